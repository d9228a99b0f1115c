//! Which store a URL names, as Flink writes them: one store per bucket (S3, GCS, S3-compatible),
//! per storage account and container (Azure), per name service (HDFS).
//!
//! | scheme | store | bucket / container | key |
//! |---|---|---|---|
//! | `s3`, `s3a`, `s3n`, `s3p` | Amazon S3 (or an S3 endpoint) | authority | path |
//! | `oss`, `cos`, `cosn`, `obs` | S3-compatible (needs an endpoint) | authority | path |
//! | `gs` | Google Cloud Storage | authority | path |
//! | `abfs`, `abfss` | Azure ADLS Gen2 (`container@account.dfs.core.windows.net`) | container | path |
//! | `wasb`, `wasbs` | Azure Blob (`container@account.blob.core.windows.net`) | container | path |
//! | `az`, `azure` | Azure Blob, account from the environment / options | authority | path |
//! | `hdfs`, `viewfs` | HDFS name node or name service | - | path |
//!
//! Flink's `s3p://` is its Presto S3 file system and `s3n://` Hadoop's old one: same buckets.

use std::fmt;

use super::Location;
use crate::error::{Error, Result};

/// The kind of store a URL lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreKind {
    /// Amazon S3 or a store speaking its API at the configured endpoint.
    S3,
    /// An S3-compatible cloud store (Alibaba OSS, Tencent COS, Huawei OBS): S3's API at the
    /// endpoint that must be configured for it.
    S3Compatible,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage (also ADLS Gen2 accounts, through the Blob API).
    Azure,
    /// HDFS (or ViewFS).
    Hdfs,
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreKind::S3 => "S3",
            StoreKind::S3Compatible => "S3-compatible",
            StoreKind::Gcs => "GCS",
            StoreKind::Azure => "Azure Blob",
            StoreKind::Hdfs => "HDFS",
        })
    }
}

/// A URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    /// The store kind.
    pub kind: StoreKind,
    /// The scheme as written (`s3a`, `abfss`, ...).
    pub scheme: String,
    /// Everything up to the key: `s3a://bucket`, `abfss://c@a.dfs.core.windows.net`.
    pub prefix: String,
    /// Bucket or container (empty for HDFS).
    pub bucket: String,
    /// Azure storage account, where the URL names one.
    pub account: Option<String>,
    /// The authority as written (`bucket`, `container@account...`, `namenode:8020`).
    pub authority: String,
    /// The object key (path for HDFS), without a leading `/`; empty for the bucket's root.
    pub key: String,
    /// Which store this is: locations with the same identity share one client (`s3://b` and
    /// `s3a://b` are one bucket).
    pub identity: String,
}

/// Takes a URL apart; `Err` for local paths and unknown schemes.
pub fn parse(loc: &Location) -> Result<StoreUrl> {
    let s = loc.as_str();
    let Some(scheme) = loc.scheme() else {
        return Err(Error::Invalid(format!("{s}: not a URL")));
    };
    let scheme = scheme.to_owned();
    let rest = &s[scheme.len() + 3..];
    let (authority, key) = match rest.split_once('/') {
        Some((a, k)) => (a.to_owned(), k.trim_matches('/').to_owned()),
        None => (rest.to_owned(), String::new()),
    };
    let lower = scheme.to_ascii_lowercase();
    let kind = match lower.as_str() {
        "s3" | "s3a" | "s3n" | "s3p" => StoreKind::S3,
        "oss" | "cos" | "cosn" | "obs" => StoreKind::S3Compatible,
        "gs" => StoreKind::Gcs,
        "abfs" | "abfss" | "wasb" | "wasbs" | "az" | "azure" | "adl" => StoreKind::Azure,
        "hdfs" | "viewfs" => StoreKind::Hdfs,
        _ => {
            return Err(Error::Invalid(format!(
                "{s}: unknown file system {scheme}:// (flinksnap reads local paths and s3, s3a, s3n, s3p, gs, abfs, abfss, \
                 wasb, wasbs, az, oss, cos, obs, hdfs and viewfs URLs)"
            )))
        }
    };
    if authority.is_empty() {
        return Err(Error::Invalid(format!("{s}: the URL names no {}", if kind == StoreKind::Hdfs { "name node" } else { "bucket" })));
    }
    let (bucket, account) = match kind {
        StoreKind::Azure => match authority.split_once('@') {
            // container@account.dfs.core.windows.net / container@account.blob.core.windows.net
            Some((container, host)) => {
                let account = host.split('.').next().unwrap_or_default().to_owned();
                if container.is_empty() || account.is_empty() {
                    return Err(Error::Invalid(format!("{s}: expected {scheme}://<container>@<account>.<host>/<path>")));
                }
                (container.to_owned(), Some(account))
            }
            None if matches!(lower.as_str(), "abfs" | "abfss" | "wasb" | "wasbs") => {
                return Err(Error::Invalid(format!("{s}: expected {scheme}://<container>@<account>.<host>/<path>")))
            }
            None => (authority.clone(), None),
        },
        StoreKind::Hdfs => (String::new(), None),
        _ => (authority.clone(), None),
    };
    let identity = match kind {
        StoreKind::S3 => format!("s3://{bucket}"),
        StoreKind::S3Compatible => format!("{lower}://{bucket}"),
        StoreKind::Gcs => format!("gs://{bucket}"),
        StoreKind::Azure => format!("azure://{}/{bucket}", account.as_deref().unwrap_or("")),
        StoreKind::Hdfs => format!("{lower}://{authority}"),
    };
    Ok(StoreUrl { kind, prefix: format!("{scheme}://{authority}"), scheme, bucket, account, authority, key, identity })
}

impl StoreUrl {
    /// The location of `key` in the same store, written as this URL writes it.
    pub fn location(&self, key: &str) -> Location {
        if key.is_empty() {
            Location::new(&self.prefix)
        } else {
            Location::new(&format!("{}/{key}", self.prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> StoreUrl {
        parse(&Location::new(s)).unwrap()
    }

    #[test]
    fn flink_schemes() {
        let u = p("s3a://flink/checkpoints/job/chk-3/");
        assert_eq!((u.kind, u.bucket.as_str(), u.key.as_str(), u.identity.as_str()), (StoreKind::S3, "flink", "checkpoints/job/chk-3", "s3://flink"));
        assert_eq!(p("s3p://flink/x").identity, p("s3://flink/y").identity);
        assert_eq!(p("s3n://flink").key, "");
        let a = p("abfss://state@acct.dfs.core.windows.net/flink/cp");
        assert_eq!((a.kind, a.bucket.as_str(), a.account.as_deref(), a.key.as_str()), (StoreKind::Azure, "state", Some("acct"), "flink/cp"));
        let w = p("wasbs://state@acct.blob.core.windows.net/flink/cp");
        assert_eq!(w.identity, a.identity);
        assert_eq!(w.location("flink/cp/x").as_str(), "wasbs://state@acct.blob.core.windows.net/flink/cp/x");
        assert_eq!(p("az://state/x").account, None);
        assert_eq!(p("gs://b/k").kind, StoreKind::Gcs);
        assert_eq!(p("oss://b/k").kind, StoreKind::S3Compatible);
        let h = p("hdfs://nn:8020/flink/cp");
        assert_eq!((h.kind, h.key.as_str(), h.identity.as_str()), (StoreKind::Hdfs, "flink/cp", "hdfs://nn:8020"));
        assert_eq!(p("viewfs://cluster/x").kind, StoreKind::Hdfs);
    }

    #[test]
    fn refuses_what_it_cannot_place() {
        for bad in ["ftp://x/y", "wasb://acct/x", "abfss://@acct.dfs.core.windows.net/x", "/local/path"] {
            assert!(parse(&Location::new(bad)).is_err(), "{bad}");
        }
        assert!(parse(&Location::new("s3:///k")).is_err());
    }
}
