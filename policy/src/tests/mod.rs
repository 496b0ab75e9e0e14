mod cedar_tests;
mod token_tests;
