mod cedar_patch_tests;
mod cedar_tests;
mod jwks_url_tests;
mod token_tests;
