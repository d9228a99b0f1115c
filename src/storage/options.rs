//! Options for object stores beyond what each cloud's own environment says: `--storage-option
//! KEY=VALUE` on the command line and a configuration file with one section per URL prefix.
//!
//! Credentials and endpoints are found the way each cloud's tools find them first (environment
//! variables such as `AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, `AZURE_STORAGE_ACCOUNT_KEY`,
//! `GOOGLE_APPLICATION_CREDENTIALS`; AWS profiles in `~/.aws`; instance, container and workload
//! identity). Options override them; the command line overrides the file.
//!
//! The file (`--storage-config FILE`, else `$FLINKSNAP_STORAGE_CONFIG`, else
//! `~/.config/flinksnap/storage.conf` when it exists):
//!
//! ```text
//! # for every store
//! max_retries = 5
//!
//! [s3://my-bucket]                # every URL that starts with this prefix
//! endpoint = https://minio.internal:9000
//! allow_http = false
//!
//! [oss://]
//! endpoint = https://oss-cn-hangzhou.aliyuncs.com
//! ```
//!
//! A longer matching prefix wins over a shorter one. Keys are object_store's configuration keys
//! (`endpoint`, `region`, `access_key_id`, `secret_access_key`, `account_name`, `account_key`,
//! `service_account_path`, ...), a few of Flink's own (`s3.endpoint`, `s3.access-key`,
//! `s3.path.style.access`, `fs.oss.endpoint`, ...), and flinksnap's: `max_retries`,
//! `retry_timeout`, `backoff_initial`, `backoff_max`, `read_block_size`, `read_ahead_blocks`.
//! Values of keys that hold secrets are never printed.

use std::path::{Path, PathBuf};

use super::url::StoreUrl;
use crate::error::{Error, Result};

/// Options for the object stores of one run.
#[derive(Debug, Clone, Default)]
pub struct StorageOptions {
    /// `--storage-option`s, in order; they apply to every store and win over the file.
    command_line: Vec<(String, String)>,
    /// Sections of the configuration file: URL prefix (empty for the top) and its options.
    sections: Vec<(String, Vec<(String, String)>)>,
    /// Where the sections came from, for messages.
    file: Option<PathBuf>,
}

impl StorageOptions {
    /// No options: each cloud's environment alone.
    pub fn new() -> StorageOptions {
        StorageOptions::default()
    }

    /// Adds a `--storage-option` (`KEY=VALUE`).
    pub fn push_option(&mut self, kv: &str) -> Result<()> {
        let (k, v) = kv
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| Error::Invalid(format!("--storage-option {}: expected KEY=VALUE", redact_pair(kv))))?;
        self.command_line.push((k.trim().to_owned(), v.trim().to_owned()));
        Ok(())
    }

    /// Adds one option for every store (what `--storage-option` does).
    pub fn set(&mut self, key: &str, value: &str) {
        self.command_line.push((key.to_owned(), value.to_owned()));
    }

    /// Reads a configuration file (format in the module doc).
    pub fn load_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display().to_string(), e))?;
        let mut sections: Vec<(String, Vec<(String, String)>)> = vec![(String::new(), Vec::new())];
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(prefix) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                sections.push((prefix.trim().trim_end_matches('/').to_owned(), Vec::new()));
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(Error::Invalid(format!("{}:{}: expected KEY = VALUE or [URL prefix]", path.display(), n + 1)));
            };
            let v = v.trim();
            let v = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(v);
            if let Some(last) = sections.last_mut() {
                last.1.push((k.trim().to_owned(), v.to_owned()));
            }
        }
        self.sections.extend(sections);
        self.file = Some(path.to_path_buf());
        Ok(())
    }

    /// Reads the configuration file named by `$FLINKSNAP_STORAGE_CONFIG`, or the default one
    /// (`$XDG_CONFIG_HOME/flinksnap/storage.conf`, `~/.config/flinksnap/storage.conf`) when it
    /// exists.
    pub fn load_default_file(&mut self) -> Result<()> {
        if let Some(p) = std::env::var_os("FLINKSNAP_STORAGE_CONFIG").filter(|p| !p.is_empty()) {
            return self.load_file(Path::new(&p));
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        if let Some(p) = base.map(|b| b.join("flinksnap").join("storage.conf")).filter(|p| p.is_file()) {
            return self.load_file(&p);
        }
        Ok(())
    }

    /// The options for a store, weakest first (later ones win): the file's top section, its
    /// sections whose prefix the URL starts with (shorter before longer), the command line.
    pub fn for_url(&self, url: &StoreUrl) -> Vec<(String, String)> {
        let whole = format!("{}/{}", url.prefix, url.key);
        let mut matching: Vec<&(String, Vec<(String, String)>)> = self
            .sections
            .iter()
            .filter(|(p, _)| p.is_empty() || prefix_matches(&whole, p) || prefix_matches(&url.prefix, p) || p.eq_ignore_ascii_case(&format!("{}://", url.scheme)))
            .collect();
        matching.sort_by_key(|(p, _)| p.len());
        let mut out: Vec<(String, String)> = matching.into_iter().flat_map(|(_, kv)| kv.iter().cloned()).collect();
        out.extend(self.command_line.iter().cloned());
        out
    }

    /// Every value of a secret option, to remove from messages.
    pub fn secrets(&self) -> Vec<String> {
        self.sections
            .iter()
            .flat_map(|(_, kv)| kv.iter())
            .chain(self.command_line.iter())
            .filter(|(k, v)| is_secret_key(k) && v.len() >= 4)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// `prefix` is `s` or a path prefix of it (`s3://b` matches `s3://b/x`, not `s3://bb`).
fn prefix_matches(s: &str, prefix: &str) -> bool {
    s == prefix || s.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/') || prefix.ends_with("://"))
}

/// Whether an option's value is a secret (never printed).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace(['-', '.'], "_");
    ["secret", "token", "password", "sas", "account_key", "private_key", "credential", "accesskeysecret", "signature"]
        .iter()
        .any(|w| k.contains(w))
        || k.ends_with("_key") && !k.ends_with("access_key") && !k.ends_with("key_id")
}

/// `KEY=VALUE` for messages: the value hidden when the key names a secret.
pub fn redact_pair(kv: &str) -> String {
    match kv.split_once('=') {
        Some((k, _)) if is_secret_key(k) => format!("{k}=***"),
        _ => kv.to_owned(),
    }
}

/// Environment variables whose values are secrets, to remove from messages.
pub const SECRET_ENV: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_TOKEN",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "OSS_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
];

/// Removes secrets from a message: the given values, and the signature, credential and token
/// parameters of URLs (SAS tokens, presigned URLs).
pub fn redact(message: &str, secrets: &[String]) -> String {
    let mut out = message.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), "***");
    }
    for param in ["sig=", "X-Amz-Signature=", "X-Amz-Credential=", "X-Amz-Security-Token=", "se=", "st=", "sv=", "sp=", "skoid=", "sktid=", "skt=", "ske=", "sks=", "skv="] {
        let mut from = 0;
        while let Some(i) = out[from..].find(param).map(|i| i + from) {
            // only as a query parameter: after `?` or `&`
            let before = out[..i].chars().last();
            let start = i + param.len();
            if !matches!(before, Some('?' | '&')) {
                from = start;
                continue;
            }
            let end = out[start..].find(|c: char| c == '&' || c.is_whitespace() || c == '"' || c == '\'').map_or(out.len(), |j| start + j);
            out.replace_range(start..end, "***");
            from = start + 3;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{url, Location};

    #[test]
    fn file_sections_by_prefix_command_line_last() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("storage.conf");
        std::fs::write(&f, "max_retries = 3\n[s3://b]\nendpoint = http://one\n[s3://b/deep]\nendpoint = \"http://two\"\n[s3://bb]\nregion = x\n[oss://]\nendpoint = http://oss\n").unwrap();
        let mut o = StorageOptions::new();
        o.load_file(&f).unwrap();
        o.push_option("region=eu-west-1").unwrap();
        let get = |u: &str| o.for_url(&url::parse(&Location::new(u)).unwrap());
        assert_eq!(get("s3://b/x"), [("max_retries", "3"), ("endpoint", "http://one"), ("region", "eu-west-1")].map(|(a, b)| (a.to_owned(), b.to_owned())));
        assert_eq!(get("s3://b/deep/chk-1").iter().rfind(|(k, _)| k == "endpoint").unwrap().1, "http://two");
        assert!(!get("s3://b/x").iter().any(|(k, v)| k == "region" && v == "x"));
        assert_eq!(get("oss://any/x")[1].1, "http://oss");
        assert!(o.push_option("novalue").is_err());
    }

    #[test]
    fn secrets_never_shown() {
        assert!(is_secret_key("secret_access_key") && is_secret_key("s3.secret-key") && is_secret_key("azure_storage_account_key"));
        assert!(is_secret_key("fs.oss.accessKeySecret") && is_secret_key("sas_token"));
        assert!(!is_secret_key("endpoint") && !is_secret_key("access_key_id") && !is_secret_key("region"));
        assert_eq!(redact_pair("secret_access_key=abc"), "secret_access_key=***");
        let m = redact("GET http://h/c/b?sv=2021&sig=abcd%2Bef&se=2030 failed, key hunter22", &["hunter22".into()]);
        assert_eq!(m, "GET http://h/c/b?sv=***&sig=***&se=*** failed, key ***");
    }
}
