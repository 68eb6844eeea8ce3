//! The master key: 32 bytes that encrypt every secret of the vault, and where they come from.
//!
//! [`MasterKey::load`] looks in order at the configured value, the `PORTICO_MASTER_KEY`
//! environment variable, and the file `<data_dir>/master.key`; if none exists it generates a
//! key and writes that file (mode 0600, atomically, never over an existing file). The key's
//! bytes never appear in a `Debug` output or an error message, and are zeroed when dropped.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::VaultError;

/// The environment variable the binary reads the master key from.
pub const MASTER_KEY_ENV: &str = "PORTICO_MASTER_KEY";
/// The name of the master key file inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

const KEY_LEN: usize = 32;

/// The 256-bit key that encrypts the vault. Zeroed on drop; `Debug` prints `MasterKey(..)`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; KEY_LEN]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Where a master key came from, for the start-up log and for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The configuration file or command line.
    Config,
    /// The `PORTICO_MASTER_KEY` environment variable.
    Environment,
    /// An existing key file.
    File { path: PathBuf },
    /// A key generated at this start and written to a new key file.
    Generated { path: PathBuf },
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Config => f.write_str("configuration"),
            KeySource::Environment => write!(f, "environment variable `{MASTER_KEY_ENV}`"),
            KeySource::File { path } => write!(f, "file `{}`", path.display()),
            KeySource::Generated { path } => write!(f, "newly generated file `{}`", path.display()),
        }
    }
}

impl MasterKey {
    /// A key from raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        MasterKey(bytes)
    }

    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self, VaultError> {
        let mut key = MasterKey([0u8; KEY_LEN]);
        getrandom::getrandom(&mut key.0).map_err(VaultError::Random)?;
        Ok(key)
    }

    /// Parses 32 bytes written as standard base64 or as 64 hexadecimal digits (surrounding
    /// whitespace is ignored). `origin` names where the text came from in the error, which
    /// never repeats the text.
    pub fn parse(text: &str, origin: &KeySource) -> Result<Self, VaultError> {
        parse_text(text)
            .map_err(|problem| VaultError::InvalidKey { origin: origin.to_string(), problem })
    }

    /// Finds the master key: `config_value` if given, else `env` (the value of
    /// [`MASTER_KEY_ENV`], passed in by the caller), else the file `<data_dir>/master.key`,
    /// else a new key written to that file. Returns the key and where it came from.
    pub fn load(
        config_value: Option<&str>,
        env: Option<String>,
        data_dir: &Path,
    ) -> Result<(MasterKey, KeySource), VaultError> {
        let env = env.map(Zeroizing::new);
        if let Some(text) = config_value {
            return Ok((Self::parse(text, &KeySource::Config)?, KeySource::Config));
        }
        if let Some(text) = env.as_deref() {
            return Ok((Self::parse(text, &KeySource::Environment)?, KeySource::Environment));
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        match fs::metadata(&path) {
            Ok(_) => Ok((Self::read_file(&path)?, KeySource::File { path })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => create_key_file(data_dir, path),
            Err(source) => Err(VaultError::KeyFile { path, action: "inspect", source }),
        }
    }

    /// Reads a key file: 32 raw bytes, or their base64 (or hex) text. On unix the file must
    /// not be accessible by group or others.
    pub fn read_file(path: &Path) -> Result<Self, VaultError> {
        let key_file_error =
            |action, source| VaultError::KeyFile { path: path.to_owned(), action, source };
        let metadata = fs::metadata(path).map_err(|e| key_file_error("inspect", e))?;
        check_private(path, &metadata)?;
        let bytes = Zeroizing::new(fs::read(path).map_err(|e| key_file_error("read", e))?);
        if let Ok(raw) = <[u8; KEY_LEN]>::try_from(bytes.as_slice()) {
            return Ok(MasterKey(raw));
        }
        let origin = KeySource::File { path: path.to_owned() }.to_string();
        let text = std::str::from_utf8(&bytes).map_err(|_| VaultError::InvalidKey {
            origin: origin.clone(),
            problem: format!(
                "is {} bytes: neither 32 raw bytes nor their base64 text",
                bytes.len()
            ),
        })?;
        parse_text(text).map_err(|problem| VaultError::InvalidKey { origin, problem })
    }

    /// The raw key bytes, for the cipher.
    pub(super) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// Decodes the text form of a key. The error describes the problem without quoting the text.
fn parse_text(text: &str) -> Result<MasterKey, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty".into());
    }
    if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut key = MasterKey([0u8; KEY_LEN]);
        for (i, pair) in text.as_bytes().chunks_exact(2).enumerate() {
            key.0[i] = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
        }
        return Ok(key);
    }
    let mut buf = Zeroizing::new(vec![0u8; text.len()]);
    let len = STANDARD.decode_slice(text, buf.as_mut_slice()).map_err(|_| {
        format!(
            "is neither 64 hexadecimal digits nor standard base64 ({} characters)",
            text.chars().count()
        )
    })?;
    let raw = <[u8; KEY_LEN]>::try_from(&buf[..len])
        .map_err(|_| format!("decodes to {len} bytes, but a master key is {KEY_LEN} bytes"))?;
    Ok(MasterKey(raw))
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

#[cfg(unix)]
fn check_private(path: &Path, metadata: &fs::Metadata) -> Result<(), VaultError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(VaultError::KeyFilePermissions { path: path.to_owned(), mode });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _metadata: &fs::Metadata) -> Result<(), VaultError> {
    Ok(())
}

/// Generates a key and writes it to `path` without ever exposing a partial file or replacing
/// an existing one: write a private temporary file, flush it, then link it into place. If
/// another process created `path` meanwhile, its key wins and is returned instead.
fn create_key_file(data_dir: &Path, path: PathBuf) -> Result<(MasterKey, KeySource), VaultError> {
    let key_file_error =
        |action, source| VaultError::KeyFile { path: path.clone(), action, source };
    fs::create_dir_all(data_dir).map_err(|e| key_file_error("create the directory of", e))?;
    let key = MasterKey::generate()?;
    let text = Zeroizing::new(format!("{}\n", STANDARD.encode(key.0)));

    let mut suffix = [0u8; 8];
    getrandom::getrandom(&mut suffix).map_err(VaultError::Random)?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = data_dir.join(format!(".{MASTER_KEY_FILE}.{suffix}.tmp"));
    if let Err(e) = write_private(&tmp, text.as_bytes()) {
        let _ = fs::remove_file(&tmp);
        return Err(key_file_error("write", e));
    }

    // INVARIANT: an existing key file is never replaced; secrets encrypted under it would be
    // lost. `hard_link` fails if the target exists, which `rename` would not.
    let linked = fs::hard_link(&tmp, &path);
    let outcome = match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // Some file systems have no hard links: fall back to a rename guarded by a check.
        Err(_) if path.exists() => Ok(false),
        Err(_) => fs::rename(&tmp, &path).map(|()| true),
    };
    let _ = fs::remove_file(&tmp);
    match outcome {
        Ok(true) => {
            sync_dir(data_dir).map_err(|e| key_file_error("flush the directory of", e))?;
            tracing::info!(path = %path.display(), "generated a new vault master key");
            Ok((key, KeySource::Generated { path }))
        }
        Ok(false) => {
            let existing = MasterKey::read_file(&path)?;
            Ok((existing, KeySource::File { path }))
        }
        Err(e) => Err(key_file_error("create", e)),
    }
}

fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn expected() -> [u8; 32] {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn parses_hex_and_base64() {
        let from_hex = MasterKey::parse(HEX, &KeySource::Config).unwrap();
        assert_eq!(from_hex.as_bytes(), &expected());
        let from_upper = MasterKey::parse(&HEX.to_uppercase(), &KeySource::Config).unwrap();
        assert_eq!(from_upper.as_bytes(), &expected());
        let b64 = format!("  {}\n", STANDARD.encode(expected()));
        let from_b64 = MasterKey::parse(&b64, &KeySource::Environment).unwrap();
        assert_eq!(from_b64.as_bytes(), &expected());
    }

    #[test]
    fn bad_values_are_not_echoed() {
        let short = STANDARD.encode([0xabu8; 16]);
        let cases = [
            ("", "is empty"),
            ("   ", "is empty"),
            (short.as_str(), "decodes to 16 bytes, but a master key is 32 bytes"),
            (
                "not*base64*at*all!secretish",
                "is neither 64 hexadecimal digits nor standard base64 (27 characters)",
            ),
        ];
        for (value, problem) in cases {
            let err = MasterKey::parse(value, &KeySource::Environment).unwrap_err();
            let message = err.to_string();
            assert_eq!(
                message,
                format!(
                    "invalid master key from environment variable `PORTICO_MASTER_KEY`: {problem}"
                )
            );
            if !value.trim().is_empty() {
                assert!(!message.contains(value.trim()), "{message}");
                assert!(!format!("{err:?}").contains(value.trim()));
            }
        }
        let err =
            MasterKey::load(Some("zzzz-secret-zzzz"), None, Path::new("/nonexistent")).unwrap_err();
        assert!(err.to_string().starts_with("invalid master key from configuration: "), "{err}");
        assert!(!err.to_string().contains("zzzz-secret-zzzz"));
    }

    #[test]
    fn debug_hides_the_bytes() {
        let key = MasterKey::from_bytes([0x41; 32]);
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
    }

    #[test]
    fn config_then_env_then_file() {
        let dir = tempfile::tempdir().unwrap();
        let b64 = STANDARD.encode([9u8; 32]);
        let (key, source) = MasterKey::load(Some(HEX), Some(b64.clone()), dir.path()).unwrap();
        assert_eq!((key.as_bytes(), source), (&expected(), KeySource::Config));
        let (key, source) = MasterKey::load(None, Some(b64), dir.path()).unwrap();
        assert_eq!((key.as_bytes(), source), (&[9u8; 32], KeySource::Environment));
        assert!(!dir.path().join(MASTER_KEY_FILE).exists());
    }

    #[cfg(unix)]
    #[test]
    fn generated_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let path = data_dir.join(MASTER_KEY_FILE);
        let (first, source) = MasterKey::load(None, None, &data_dir).unwrap();
        assert_eq!(source, KeySource::Generated { path: path.clone() });
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (second, source) = MasterKey::load(None, None, &data_dir).unwrap();
        assert_eq!(source, KeySource::File { path: path.clone() });
        assert_eq!(first.as_bytes(), second.as_bytes());
        // Only the key file is left behind, no temporary file.
        let names: Vec<_> =
            fs::read_dir(&data_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(MASTER_KEY_FILE)]);
    }

    #[cfg(unix)]
    #[test]
    fn existing_key_file_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        write_private(&path, &[3u8; 32]).unwrap();
        // A racing generator that finds the file already in place adopts the existing key.
        let (key, source) = create_key_file(dir.path(), path.clone()).unwrap();
        assert_eq!(source, KeySource::File { path: path.clone() });
        assert_eq!(key.as_bytes(), &[3u8; 32]);
        assert_eq!(fs::read(&path).unwrap(), vec![3u8; 32]);
    }

    #[cfg(unix)]
    #[test]
    fn key_file_formats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        write_private(&path, &expected()).unwrap();
        assert_eq!(MasterKey::read_file(&path).unwrap().as_bytes(), &expected());
        fs::remove_file(&path).unwrap();
        write_private(&path, format!("{}\n", STANDARD.encode(expected())).as_bytes()).unwrap();
        assert_eq!(MasterKey::read_file(&path).unwrap().as_bytes(), &expected());
        fs::remove_file(&path).unwrap();
        write_private(&path, &[0xff; 20]).unwrap();
        let err = MasterKey::read_file(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid master key from file `{}`: is 20 bytes: neither 32 raw bytes nor their base64 text",
                path.display()
            )
        );
    }

    #[cfg(unix)]
    #[test]
    fn readable_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        write_private(&path, &expected()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load(None, None, dir.path()).unwrap_err();
        assert!(matches!(err, VaultError::KeyFilePermissions { mode: 0o644, .. }), "{err:?}");
        let p = path.display();
        assert_eq!(
            err.to_string(),
            format!(
                "master key file `{p}` is accessible by group or others (mode 644): run `chmod 600 {p}`"
            )
        );
    }
}
