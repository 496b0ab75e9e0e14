//! The verification command line, shared by the standalone `brig-attest`
//! binary and `brig attest` (the binaries' edge: errors are `anyhow`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::{Algorithm, Artifacts, PublicKey, Requirement};

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Verify an envelope: signature, payload type, statement shape, and
    /// optionally the output files and requirements
    Verify {
        /// The envelope (`<container-id>.intoto.json`)
        envelope: PathBuf,
        /// A trusted public key (SPKI PEM); repeat for several
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// Recompute every subject's digest from files: `DIR` (subject
        /// `out/a.txt` is `DIR/out/a.txt`), or `/out=DIR` per output mount
        /// (subject `out/a.txt` is `DIR/a.txt`)
        #[arg(long = "artifacts")]
        artifacts: Vec<String>,
        /// Require a field to have a value: profile=, profile-digest=, exit=,
        /// signal=, image=, rootfs=, tenant=, subject= (the token's sub), iss=,
        /// decision=, timed_out=, oom=, killed=, output=NAME[@sha256:HEX],
        /// inputs-unchanged= (no input changed on the host during the run),
        /// rootfs-unchanged= (the rootfs was not changed from before the job
        /// started to its end),
        /// builder=, container=, keyid= (the key that signed it: with several
        /// keys trusted, which host), statement=sha256:HEX (this one record).
        /// An empty value (tenant=) requires that the field is absent
        #[arg(long = "require", value_name = "KEY=VALUE")]
        require: Vec<String>,
        /// Print the verified statement (JSON) on success
        #[arg(long)]
        print: bool,
    },
    /// Print an envelope's statement readably (does not verify it)
    Show {
        envelope: PathBuf,
        /// Print the statement as JSON instead
        #[arg(long)]
        json: bool,
    },
    /// Generate a signing key pair: DIR/attest.key (PKCS#8 PEM, mode 0600)
    /// and DIR/attest.pub (SPKI PEM)
    Keygen {
        #[arg(long)]
        out: PathBuf,
        /// ed25519 or ecdsa-p256
        #[arg(long, default_value = "ed25519")]
        algorithm: String,
    },
}

/// Reads an envelope: a regular file (opened without blocking, so a FIFO
/// cannot hang the verifier, and checked on the open file), read only up to
/// one byte past the largest envelope (so `/dev/zero` or a growing file
/// cannot exhaust memory).
pub fn read_envelope(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32)
        .open(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    let meta = file.metadata().with_context(|| format!("cannot read `{}`", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!("`{}` is not a regular file", path.display());
    }
    let max = crate::MAX_ENVELOPE_BYTES as u64;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).with_context(|| format!("cannot read `{}`", path.display()))?;
    if bytes.len() as u64 > max {
        anyhow::bail!("`{}` is more than the {max} bytes an envelope may be", path.display());
    }
    Ok(bytes)
}

/// brig writes a run's record as `<container id>.intoto.json` (a later run
/// of the same id as `<container id>~<n>.intoto.json`; `~` is in no id): a
/// file of that name must hold that container's record, not another run's
/// copied over it.
fn check_file_name(path: &std::path::Path, container_id: &str) -> anyhow::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if let Some(stem) = name.strip_suffix(".intoto.json") {
        let numbered = stem.rsplit_once(crate::write::RUN_SEPARATOR).is_some_and(|(id, n)| {
            id == container_id && !n.is_empty() && !n.starts_with('0') && n.bytes().all(|b| b.is_ascii_digit())
        });
        if stem != container_id && !numbered {
            anyhow::bail!(
                "`{}` holds the record of container `{}`, not of `{}` (a record copied over another)",
                path.display(),
                crate::name::escape(container_id.as_bytes()),
                crate::name::escape(stem.as_bytes())
            );
        }
    }
    Ok(())
}

/// Runs one command.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Verify { envelope, keys, artifacts, require, print } => {
            let bytes = read_envelope(&envelope)?;
            let keys = keys
                .iter()
                .map(|p| PublicKey::load(p).with_context(|| format!("cannot use key `{}`", p.display())))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let reqs = require.iter().map(|r| r.parse::<Requirement>()).collect::<Result<Vec<_>, _>>()?;
            let artifacts = Artifacts::parse(&artifacts)?;
            let v = crate::verify_with(&bytes, &keys, artifacts.as_ref(), &reqs)
                .with_context(|| format!("`{}` does not verify", envelope.display()))?;
            check_file_name(&envelope, &v.container_id())
                .with_context(|| format!("`{}` does not verify", envelope.display()))?;
            if print {
                println!("{}", serde_json::to_string_pretty(&v.statement)?);
            }
            let files = if artifacts.is_some() {
                format!(", {} output file(s) match", v.artifacts_checked)
            } else {
                String::new()
            };
            eprintln!(
                "verified: container {} signed by keyid {}; statement {}; {} subject(s){files}; {} requirement(s) met",
                crate::clean(&v.container_id()),
                v.keyid,
                v.statement_digest,
                v.subjects.len(),
                reqs.len()
            );
            Ok(())
        }
        Command::Show { envelope, json } => {
            let bytes = read_envelope(&envelope)?;
            if json {
                let env: crate::Envelope = serde_json::from_slice(&bytes).context("not a DSSE envelope")?;
                let payload = env.payload_bytes().context("the payload is not base64")?;
                let v: serde_json::Value = serde_json::from_slice(&payload).context("the payload is not JSON")?;
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", crate::show(&bytes)?);
            }
            Ok(())
        }
        Command::Keygen { out, algorithm } => {
            let alg: Algorithm = algorithm.parse()?;
            let files = crate::keygen(&out, alg)?;
            println!("private key  {}", files.private.display());
            println!("public key   {}", files.public.display());
            println!("keyid        {}", files.keyid);
            Ok(())
        }
    }
}
