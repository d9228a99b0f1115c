//! Object stores (S3 and S3-compatible stores, GCS, Azure Blob/ADLS, HDFS) behind the
//! synchronous [`Storage`] trait: `object_store` clients driven by one private tokio runtime.
//!
//! Reads: a whole `_metadata` in one GET; state files in blocks (ranged GETs, `read_block_size`,
//! default 2 MiB) that stay cached for the next reader, with the next blocks of a file fetched
//! in the background while it is read on sequentially (`read_ahead_blocks`, default 4); sizes
//! from HEAD or from listings, many at a time. Writes: a file streams out as a multipart upload
//! whose parts go up while the caller writes; small files are one PUT, `_metadata` a conditional
//! one (`If-None-Match: *`). Failures are retried with backoff (throttling, 5xx, timeouts) by
//! object_store's retry loop; what still fails names the URL, the operation and the status.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutOptions, PutPayload, WriteMultipart};

use super::options::{redact, StorageOptions, SECRET_ENV};
use super::url::{self, StoreKind, StoreUrl};
use super::{FileMeta, FileWriter, Location, PutMode, Storage};
use crate::error::{Error, Result};

/// Multipart part size: above S3's 5 MiB minimum, small enough to keep several in flight.
const PART_SIZE: usize = 8 << 20;
/// Parts uploading at once per file.
const PARTS_IN_FLIGHT: usize = 4;
/// HEADs in flight at once.
const HEADS_IN_FLIGHT: usize = 16;
/// Objects per page handed to a [`Storage::list_files`] caller.
const LIST_PAGE: usize = 1000;
/// S3's largest single-request copy; larger objects are copied through the client.
const S3_MAX_COPY: u64 = 5 << 30;
/// Cached blocks at most (with the default block size: 64 MiB).
const CACHE_BLOCKS: usize = 32;

/// The runtime every store's requests run on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .thread_name("flinksnap-io")
            .enable_all()
            .build()
            .unwrap_or_else(|e| {
                eprintln!("flinksnap: cannot start the I/O runtime: {e}");
                std::process::exit(2)
            })
    })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

type BlockFuture = Shared<BoxFuture<'static, std::result::Result<Bytes, Arc<object_store::Error>>>>;

/// Blocks of files being read, and where each file was read last.
#[derive(Default)]
struct BlockCache {
    blocks: HashMap<(String, u64), BlockFuture>,
    order: VecDeque<(String, u64)>,
    last_block: HashMap<String, u64>,
}

/// One object store (a bucket, a container, a name node).
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    kind: StoreKind,
    /// The store's name in messages (`s3://bucket`).
    name: String,
    secrets: Vec<String>,
    block_size: u64,
    read_ahead: u64,
    conditional_put: bool,
    cache: Mutex<BlockCache>,
    /// Sizes and times learnt from HEADs and listings (snapshot files do not change while read;
    /// what this store writes or deletes is forgotten).
    heads: Mutex<HashMap<String, (u64, Option<SystemTime>)>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage").field("store", &self.name).field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// A duration option: `30s`, `2m`, `500ms`, or plain seconds.
fn duration(key: &str, v: &str) -> Result<Duration> {
    let v = v.trim();
    let (num, unit) = v.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((v, "s"), |i| (&v[..i], v[i..].trim()));
    let n: f64 = num.parse().map_err(|_| Error::Invalid(format!("storage option {key}={v}: expected a duration such as 30s, 2m or 500ms")))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(Error::Invalid(format!("storage option {key}={v}: unknown unit {unit:?} (ms, s, m, h)"))),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn number<T: std::str::FromStr>(key: &str, v: &str) -> Result<T> {
    v.trim().parse().map_err(|_| Error::Invalid(format!("storage option {key}={v}: expected a number")))
}

/// Flink's and Hadoop's names for options, as object_store calls them.
fn flink_alias(key: &str) -> &str {
    match key {
        "s3.endpoint" | "fs.s3a.endpoint" | "fs.oss.endpoint" | "oss.endpoint" | "fs.cosn.bucket.endpoint_suffix" | "fs.obs.endpoint" => "endpoint",
        "s3.access-key" | "s3.access.key" | "fs.s3a.access.key" | "fs.oss.accessKeyId" => "access_key_id",
        "s3.secret-key" | "s3.secret.key" | "fs.s3a.secret.key" | "fs.oss.accessKeySecret" => "secret_access_key",
        "fs.s3a.session.token" | "fs.oss.securityToken" => "token",
        "s3.region" | "fs.s3a.endpoint.region" | "fs.s3a.region" => "region",
        other => other,
    }
}

/// Options of ours, not the store's.
#[derive(Default)]
struct OwnOptions {
    retry: object_store::RetryConfig,
    block_size: Option<u64>,
    read_ahead: Option<u64>,
    conditional_put: Option<bool>,
    path_style: Option<bool>,
}

impl OwnOptions {
    /// Takes `key` if it is ours.
    fn take(&mut self, key: &str, v: &str) -> Result<bool> {
        match key {
            "max_retries" => self.retry.max_retries = number(key, v)?,
            "retry_timeout" => self.retry.retry_timeout = duration(key, v)?,
            "backoff_initial" => self.retry.backoff.init_backoff = duration(key, v)?,
            "backoff_max" => self.retry.backoff.max_backoff = duration(key, v)?,
            "read_block_size" => self.block_size = Some(number::<u64>(key, v)?.max(64 * 1024)),
            "read_ahead_blocks" => self.read_ahead = Some(number(key, v)?),
            "s3.path.style.access" | "fs.s3a.path.style.access" => self.path_style = Some(number::<bool>(key, v)?),
            "conditional_put" | "aws_conditional_put" if v == "disabled" => self.conditional_put = Some(false),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Static credentials of an AWS profile (`~/.aws/credentials`, `~/.aws/config`), for when the
/// environment has none: what the AWS CLI and SDKs would use.
fn aws_profile() -> Vec<(String, String)> {
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        return Vec::new();
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, name: &str| std::env::var_os(var).map(std::path::PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)));
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let section = |path: Option<std::path::PathBuf>, names: &[String]| -> Vec<(String, String)> {
        let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else { return Vec::new() };
        let mut current = String::new();
        let mut out = Vec::new();
        for line in text.lines().map(str::trim) {
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                current = s.trim().to_owned();
            } else if let Some((k, v)) = line.split_once('=').filter(|_| names.contains(&current)) {
                out.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        out
    };
    let mut out = Vec::new();
    for (k, v) in section(file("AWS_SHARED_CREDENTIALS_FILE", "credentials"), std::slice::from_ref(&profile)) {
        match k.as_str() {
            "aws_access_key_id" | "aws_secret_access_key" | "aws_session_token" => out.push((k, v)),
            _ => {}
        }
    }
    for (k, v) in section(file("AWS_CONFIG_FILE", "config"), &[format!("profile {profile}"), profile.clone()]) {
        match k.as_str() {
            "region" if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() => out.push(("aws_region".into(), v)),
            "endpoint_url" if std::env::var_os("AWS_ENDPOINT").is_none() && std::env::var_os("AWS_ENDPOINT_URL").is_none() => out.push(("aws_endpoint".into(), v)),
            "aws_access_key_id" | "aws_secret_access_key" | "aws_session_token" if !out.iter().any(|(o, _)| *o == k) => out.push((k, v)),
            _ => {}
        }
    }
    out
}

impl ObjectStorage {
    /// A client for the store of `u`, configured by the environment and `options`.
    pub fn connect(u: &StoreUrl, options: &StorageOptions) -> Result<ObjectStorage> {
        let mut own = OwnOptions::default();
        let mut secrets: Vec<String> = options.secrets();
        secrets.extend(SECRET_ENV.iter().filter_map(|v| std::env::var(v).ok()).filter(|v| v.len() >= 4));
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in options.for_url(u) {
            if !own.take(&k, &v)? {
                pairs.push((flink_alias(&k).to_owned(), v));
            }
        }
        let unknown = |k: &str| Error::Invalid(format!("storage option {k}: not an option of {} stores (see `flinksnap --help`, storage options)", u.kind));
        let store: Arc<dyn ObjectStore> = match u.kind {
            StoreKind::S3 | StoreKind::S3Compatible => {
                use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
                let mut b = AmazonS3Builder::from_env().with_bucket_name(&u.bucket).with_conditional_put(S3ConditionalPut::ETagMatch);
                let profile = aws_profile();
                secrets.extend(profile.iter().filter(|(k, _)| k != "aws_access_key_id" && k != "aws_region" && k != "aws_endpoint").map(|(_, v)| v.clone()));
                for (k, v) in profile {
                    if let Ok(key) = k.parse::<AmazonS3ConfigKey>() {
                        b = b.with_config(key, v);
                    }
                }
                if u.kind == StoreKind::S3Compatible {
                    // Aliyun's and others' variable names for the same keys.
                    let env = |names: &[&str]| names.iter().find_map(|n| std::env::var(n).ok());
                    if let Some(v) = env(&["OSS_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_ID"]) {
                        b = b.with_access_key_id(v);
                    }
                    if let Some(v) = env(&["OSS_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"]) {
                        b = b.with_secret_access_key(v);
                    }
                    if let Some(v) = env(&["OSS_ENDPOINT"]) {
                        b = b.with_endpoint(v);
                    }
                    // These stores address buckets by host name.
                    b = b.with_virtual_hosted_style_request(true);
                }
                let mut has_endpoint = std::env::var_os("AWS_ENDPOINT").is_some() || std::env::var_os("AWS_ENDPOINT_URL").is_some();
                for (k, v) in &pairs {
                    let key: AmazonS3ConfigKey = k.parse().map_err(|_| unknown(k))?;
                    has_endpoint |= matches!(key, AmazonS3ConfigKey::Endpoint);
                    b = b.with_config(key, v);
                }
                if let Some(path_style) = own.path_style {
                    b = b.with_virtual_hosted_style_request(!path_style);
                }
                if u.kind == StoreKind::S3Compatible && !has_endpoint && std::env::var_os("OSS_ENDPOINT").is_none() {
                    return Err(Error::Invalid(format!(
                        "{}: a {}:// store needs its endpoint: --storage-option endpoint=https://<bucket>.<region endpoint> (or `endpoint` in the storage config file)",
                        u.prefix, u.scheme
                    )));
                }
                if own.conditional_put == Some(false) {
                    b = b.with_conditional_put(S3ConditionalPut::Disabled);
                }
                Arc::new(b.with_retry(own.retry.clone()).build().map_err(|e| build_error(u, e, &secrets))?)
            }
            StoreKind::Gcs => {
                use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
                let mut b = GoogleCloudStorageBuilder::from_env().with_bucket_name(&u.bucket);
                for (k, v) in &pairs {
                    b = b.with_config(k.parse::<GoogleConfigKey>().map_err(|_| unknown(k))?, v);
                }
                Arc::new(b.with_retry(own.retry.clone()).build().map_err(|e| build_error(u, e, &secrets))?)
            }
            StoreKind::Azure => {
                use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
                let mut b = MicrosoftAzureBuilder::from_env().with_container_name(&u.bucket);
                if let Some(a) = &u.account {
                    b = b.with_account(a);
                }
                for (k, v) in &pairs {
                    b = b.with_config(k.parse::<AzureConfigKey>().map_err(|_| unknown(k))?, v);
                }
                Arc::new(b.with_retry(own.retry.clone()).build().map_err(|e| build_error(u, e, &secrets))?)
            }
            StoreKind::Hdfs => hdfs_store(u, &pairs, &secrets)?,
        };
        let conditional_put = own.conditional_put.unwrap_or(true);
        Ok(ObjectStorage {
            inner: Arc::new(Inner {
                store,
                kind: u.kind,
                name: u.prefix.clone(),
                secrets,
                block_size: own.block_size.unwrap_or(2 << 20),
                read_ahead: own.read_ahead.unwrap_or(4),
                conditional_put,
                cache: Mutex::new(BlockCache::default()),
                heads: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// An object store the caller made (tests: in-memory, throttled).
    pub fn from_store(store: Arc<dyn ObjectStore>, name: &str) -> ObjectStorage {
        ObjectStorage {
            inner: Arc::new(Inner {
                store,
                kind: StoreKind::S3,
                name: name.to_owned(),
                secrets: Vec::new(),
                block_size: 2 << 20,
                read_ahead: 4,
                conditional_put: true,
                cache: Mutex::new(BlockCache::default()),
                heads: Mutex::new(HashMap::new()),
            }),
        }
    }
}

#[cfg(feature = "hdfs")]
fn hdfs_store(u: &StoreUrl, pairs: &[(String, String)], secrets: &[String]) -> Result<Arc<dyn ObjectStore>> {
    let b = hdfs_native_object_store::HdfsObjectStoreBuilder::new().with_url(&u.prefix).with_config(pairs.iter().cloned());
    Ok(Arc::new(b.build().map_err(|e| build_error(u, e, secrets))?))
}

#[cfg(not(feature = "hdfs"))]
fn hdfs_store(u: &StoreUrl, _: &[(String, String)], _: &[String]) -> Result<Arc<dyn ObjectStore>> {
    Err(Error::Invalid(format!("{}: this flinksnap was built without HDFS support (cargo feature `hdfs`)", u.prefix)))
}

fn build_error(u: &StoreUrl, e: object_store::Error, secrets: &[String]) -> Error {
    Error::Storage { url: u.prefix.clone(), operation: "configure", status: None, message: redact(&e.to_string(), secrets) }
}

/// The HTTP status in an object_store message (`... status code: 503 Service Unavailable ...`).
fn status_of(message: &str) -> Option<u16> {
    let i = message.find("status code: ")? + "status code: ".len();
    message.get(i..i + 3)?.parse().ok()
}

impl Inner {
    fn key(&self, loc: &Location) -> Result<(StoreUrl, ObjectPath)> {
        let u = url::parse(loc)?;
        let path = ObjectPath::parse(&u.key).map_err(|e| Error::Invalid(format!("{loc}: not a valid object key: {e}")))?;
        Ok((u, path))
    }

    fn error(&self, e: &object_store::Error, loc: &Location, operation: &'static str) -> Error {
        use object_store::Error as E;
        match e {
            E::NotFound { .. } => Error::NotFound { file: loc.to_string(), referenced_by: None },
            E::AlreadyExists { .. } => Error::AlreadyExists { file: loc.to_string() },
            other => {
                let message = redact(&other.to_string(), &self.secrets);
                let status = status_of(&message).or(match other {
                    E::PermissionDenied { .. } => Some(403),
                    E::Unauthenticated { .. } => Some(401),
                    E::Precondition { .. } => Some(412),
                    _ => None,
                });
                Error::Storage { url: loc.to_string(), operation, status, message }
            }
        }
    }

    fn forget(&self, key: &str) {
        self.heads.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        c.blocks.retain(|(k, _), _| k != key);
        c.last_block.remove(key);
    }

    fn remember(&self, key: &str, size: u64, modified: Option<SystemTime>) {
        self.heads.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_owned(), (size, modified));
    }

    fn meta(&self, u: &StoreUrl, m: &object_store::ObjectMeta) -> FileMeta {
        let modified = Some(SystemTime::from(m.last_modified));
        self.remember(m.location.as_ref(), m.size, modified);
        FileMeta { location: u.location(m.location.as_ref()), size: m.size, modified, is_dir: false }
    }

    async fn head_async(&self, loc: &Location) -> Result<FileMeta> {
        let (u, path) = self.key(loc)?;
        if let Some(&(size, modified)) = self.heads.lock().unwrap_or_else(|p| p.into_inner()).get(path.as_ref()) {
            return Ok(FileMeta { location: loc.clone(), size, modified, is_dir: false });
        }
        if !u.key.is_empty() {
            match self.store.head(&path).await {
                Ok(m) => {
                    let mut meta = self.meta(&u, &m);
                    meta.location = loc.clone();
                    return Ok(meta);
                }
                Err(object_store::Error::NotFound { .. }) => {}
                // HDFS answers a HEAD of a directory with an error of its own: the listing decides.
                Err(_) if self.kind == StoreKind::Hdfs => {}
                Err(e) => return Err(self.error(&e, loc, "HEAD")),
            }
        }
        // No object: a directory when something lies below it.
        let prefix = (!u.key.is_empty()).then_some(&path);
        let first = self.store.list(prefix).next().await;
        match first {
            Some(Ok(_)) => Ok(FileMeta { location: loc.clone(), size: 0, modified: None, is_dir: true }),
            // An empty bucket is still a directory.
            None if u.key.is_empty() => Ok(FileMeta { location: loc.clone(), size: 0, modified: None, is_dir: true }),
            None => Err(Error::NotFound { file: loc.to_string(), referenced_by: None }),
            Some(Err(object_store::Error::NotFound { .. })) => Err(Error::NotFound { file: loc.to_string(), referenced_by: None }),
            Some(Err(e)) => Err(self.error(&e, loc, "LIST")),
        }
    }

    fn size(&self, loc: &Location) -> Result<u64> {
        let m = block_on(self.head_async(loc))?;
        if m.is_dir {
            return Err(Error::Invalid(format!("{loc}: a directory, not a file")));
        }
        Ok(m.size)
    }

    /// The future of block `b` of `key`, started if it is not cached.
    fn block(&self, cache: &mut BlockCache, path: &ObjectPath, b: u64, size: u64) -> BlockFuture {
        let k = (path.as_ref().to_owned(), b);
        if let Some(f) = cache.blocks.get(&k) {
            return f.clone();
        }
        let start = b * self.block_size;
        let end = (start + self.block_size).min(size);
        let store = self.store.clone();
        let p = path.clone();
        let handle = runtime().spawn(async move { store.get_range(&p, start..end).await });
        let f: BoxFuture<'static, _> = async move {
            match handle.await {
                Ok(r) => r.map_err(Arc::new),
                Err(e) => Err(Arc::new(object_store::Error::JoinError { source: e })),
            }
        }
        .boxed();
        let f = f.shared();
        cache.blocks.insert(k.clone(), f.clone());
        cache.order.push_back(k);
        while cache.order.len() > CACHE_BLOCKS {
            if let Some(old) = cache.order.pop_front() {
                cache.blocks.remove(&old);
            }
        }
        f
    }

    fn read_range(&self, loc: &Location, range: Range<u64>) -> Result<Vec<u8>> {
        if range.start > range.end {
            return Err(Error::Invalid(format!("{loc}: cannot read bytes {}..{}", range.start, range.end)));
        }
        let size = self.size(loc)?;
        if range.end > size {
            return Err(Error::Invalid(format!("{loc}: cannot read bytes {}..{}: the file has {size} bytes", range.start, range.end)));
        }
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let (_, path) = self.key(loc)?;
        let bs = self.block_size;
        if range.end - range.start >= 2 * bs {
            // Large reads (copies) go straight to the store.
            let bytes = block_on(self.store.get_range(&path, range)).map_err(|e| self.error(&e, loc, "GET"))?;
            return Ok(bytes.to_vec());
        }
        let (first, last) = (range.start / bs, (range.end - 1) / bs);
        let blocks: Vec<(u64, BlockFuture)> = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            let sequential = cache.last_block.get(path.as_ref()).is_some_and(|&l| first == l || first == l + 1);
            let needed: Vec<(u64, BlockFuture)> = (first..=last).map(|b| (b, self.block(&mut cache, &path, b, size))).collect();
            if sequential || first == 0 {
                let blocks_in_file = size.div_ceil(bs);
                for b in last + 1..(last + 1 + self.read_ahead).min(blocks_in_file) {
                    let _started = self.block(&mut cache, &path, b, size);
                }
            }
            cache.last_block.insert(path.as_ref().to_owned(), last);
            needed
        };
        let mut out = Vec::with_capacity((range.end - range.start) as usize);
        for (b, f) in blocks {
            let bytes = block_on(f).map_err(|e| {
                // A failed block is not kept: the next read asks again.
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                cache.blocks.remove(&(path.as_ref().to_owned(), b));
                self.error(&e, loc, "GET")
            })?;
            let block_start = b * bs;
            let from = range.start.max(block_start) - block_start;
            let to = range.end.min(block_start + bytes.len() as u64) - block_start;
            if to > bytes.len() as u64 || from > to {
                return Err(Error::Invalid(format!("{loc}: the store returned {} bytes for block {b}, the file has {size}", bytes.len())));
            }
            out.extend_from_slice(&bytes[from as usize..to as usize]);
        }
        if out.len() as u64 != range.end - range.start {
            return Err(Error::Invalid(format!("{loc}: the store returned {} bytes for {}..{}", out.len(), range.start, range.end)));
        }
        Ok(out)
    }
}

impl Storage for ObjectStorage {
    fn head(&self, loc: &Location) -> Result<FileMeta> {
        block_on(self.inner.head_async(loc))
    }

    fn head_many(&self, locs: &[Location]) -> Vec<Result<FileMeta>> {
        let inner = &self.inner;
        block_on(futures::stream::iter(locs).map(|l| inner.head_async(l)).buffered(HEADS_IN_FLIGHT).collect())
    }

    fn read(&self, loc: &Location) -> Result<Vec<u8>> {
        let (u, path) = self.inner.key(loc)?;
        let inner = &self.inner;
        block_on(async {
            let r = inner.store.get(&path).await.map_err(|e| inner.error(&e, loc, "GET"))?;
            inner.meta(&u, &r.meta);
            let bytes = r.bytes().await.map_err(|e| inner.error(&e, loc, "GET"))?;
            Ok(bytes.to_vec())
        })
    }

    fn read_range(&self, loc: &Location, range: Range<u64>) -> Result<Vec<u8>> {
        self.inner.read_range(loc, range)
    }

    fn open(&self, loc: &Location) -> Result<Box<dyn Read + Send>> {
        let size = self.inner.size(loc)?;
        Ok(Box::new(BlockReader { inner: self.inner.clone(), loc: loc.clone(), pos: 0, size, buf: Vec::new(), at: 0 }))
    }

    fn open_at(&self, loc: &Location, start: u64) -> Result<Box<dyn Read + Send>> {
        let size = self.inner.size(loc)?;
        Ok(Box::new(BlockReader { inner: self.inner.clone(), loc: loc.clone(), pos: start.min(size), size, buf: Vec::new(), at: 0 }))
    }

    fn list(&self, dir: &Location) -> Result<Vec<FileMeta>> {
        let (u, path) = self.inner.key(dir)?;
        let prefix = (!u.key.is_empty()).then_some(&path);
        let r = block_on(self.inner.store.list_with_delimiter(prefix)).map_err(|e| self.inner.error(&e, dir, "LIST"))?;
        if r.objects.is_empty() && r.common_prefixes.is_empty() && !u.key.is_empty() {
            // What a local directory that does not exist says.
            return Err(Error::NotFound { file: dir.to_string(), referenced_by: None });
        }
        let mut out: Vec<FileMeta> = r
            .objects
            .iter()
            // A directory marker (`chk-3/`, written by Hadoop's S3A) is the directory itself.
            .filter(|m| m.location != path)
            .map(|m| self.inner.meta(&u, m))
            .collect();
        out.extend(r.common_prefixes.iter().map(|p| FileMeta { location: u.location(p.as_ref()), size: 0, modified: None, is_dir: true }));
        out.sort_by(|a, b| a.location.cmp(&b.location));
        out.dedup_by(|a, b| a.location == b.location);
        Ok(out)
    }

    fn list_files(&self, dir: &Location, page: &mut dyn FnMut(Vec<FileMeta>) -> Result<()>) -> Result<()> {
        let (u, path) = self.inner.key(dir)?;
        let prefix = (!u.key.is_empty()).then_some(&path);
        let mut stream = self.inner.store.list(prefix).chunks(LIST_PAGE);
        while let Some(chunk) = block_on(stream.next()) {
            let mut files = Vec::with_capacity(chunk.len());
            for m in chunk {
                let m = m.map_err(|e| self.inner.error(&e, dir, "LIST"))?;
                if m.location != path {
                    files.push(self.inner.meta(&u, &m));
                }
            }
            page(files)?;
        }
        Ok(())
    }

    fn is_object_store(&self, _: &Location) -> bool {
        true
    }

    fn create(&self, loc: &Location) -> Result<Box<dyn FileWriter>> {
        let (_, path) = self.inner.key(loc)?;
        self.inner.forget(path.as_ref());
        Ok(Box::new(ObjectWriter { inner: self.inner.clone(), loc: loc.clone(), path, buf: Vec::new(), upload: None, size: 0, done: false }))
    }

    fn put(&self, loc: &Location, bytes: &[u8], mode: PutMode) -> Result<()> {
        let (_, path) = self.inner.key(loc)?;
        self.inner.forget(path.as_ref());
        let inner = &self.inner;
        if mode == PutMode::Create && !inner.conditional_put {
            // The store cannot refuse an overwrite itself: look first (a race is possible).
            if self.exists(loc)? {
                return Err(Error::AlreadyExists { file: loc.to_string() });
            }
        }
        let opts = PutOptions {
            mode: match mode {
                PutMode::Create if inner.conditional_put => object_store::PutMode::Create,
                _ => object_store::PutMode::Overwrite,
            },
            ..Default::default()
        };
        let payload = PutPayload::from(Bytes::copy_from_slice(bytes));
        block_on(inner.store.put_opts(&path, payload, opts)).map_err(|e| inner.error(&e, loc, "PUT"))?;
        inner.forget(path.as_ref());
        Ok(())
    }

    fn copy(&self, from: &Location, to: &Location) -> Result<()> {
        let (_, src) = self.inner.key(from)?;
        let (_, dst) = self.inner.key(to)?;
        self.inner.forget(dst.as_ref());
        let size = self.inner.size(from)?;
        let s3 = matches!(self.inner.kind, StoreKind::S3 | StoreKind::S3Compatible);
        if !(s3 && size > S3_MAX_COPY) {
            match block_on(self.inner.store.copy(&src, &dst)) {
                Ok(()) => return Ok(()),
                // Stores (or servers) without a server-side copy: through the client below.
                Err(object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. }) => {}
                Err(e) => return Err(self.inner.error(&e, from, "COPY")),
            }
        }
        // S3 copies at most 5 GiB in one request: a ranged read and a multipart upload.
        super::copy_through(self, from, 0, size, self, to, PART_SIZE as u64, &mut |_| {})?;
        Ok(())
    }

    fn delete(&self, loc: &Location) -> Result<()> {
        let (_, path) = self.inner.key(loc)?;
        self.inner.forget(path.as_ref());
        match block_on(self.inner.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.inner.error(&e, loc, "DELETE")),
        }
    }

    /// Bulk deletes, each failed file tried again (a delete is idempotent: gone counts as
    /// deleted). A bulk request is a POST that object_store does not retry, and one whose pooled
    /// connection the server had closed (Azurite after 5 idle seconds) fails as a whole: 256
    /// blobs of an Azure batch at once.
    fn delete_many(&self, locs: &[Location]) -> Result<Vec<(Location, Error)>> {
        let mut failed = self.delete_many_once(locs)?;
        for pause in [200, 1000] {
            if failed.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(pause));
            let again: Vec<Location> = failed.iter().map(|(l, _)| l.clone()).collect();
            failed = self.delete_many_once(&again)?;
        }
        Ok(failed)
    }
}

impl ObjectStorage {
    fn delete_many_once(&self, locs: &[Location]) -> Result<Vec<(Location, Error)>> {
        let mut by_key: HashMap<String, Location> = HashMap::new();
        let mut paths = Vec::with_capacity(locs.len());
        for l in locs {
            let (_, p) = self.inner.key(l)?;
            self.inner.forget(p.as_ref());
            by_key.insert(p.as_ref().to_owned(), l.clone());
            paths.push(Ok(p));
        }
        let inner = &self.inner;
        let results: Vec<object_store::Result<ObjectPath>> =
            block_on(inner.store.delete_stream(futures::stream::iter(paths).boxed()).collect());
        let mut deleted: HashSet<String> = HashSet::new();
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(p) => {
                    deleted.insert(p.as_ref().to_owned());
                }
                Err(object_store::Error::NotFound { path, .. }) => {
                    deleted.insert(path.trim_start_matches('/').to_owned());
                }
                Err(e) => errors.push(e),
            }
        }
        let mut failed = Vec::new();
        let mut why = errors.iter();
        for (k, l) in by_key {
            if !deleted.contains(&k) {
                let e = match why.next() {
                    Some(e) => inner.error(e, &l, "DELETE"),
                    None => Error::Storage { url: l.to_string(), operation: "DELETE", status: None, message: "the store did not confirm the delete".into() },
                };
                failed.push((l, e));
            }
        }
        failed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(failed)
    }
}

/// A sequential reader over an object, through the block cache (so it reads ahead).
struct BlockReader {
    inner: Arc<Inner>,
    loc: Location,
    pos: u64,
    size: u64,
    buf: Vec<u8>,
    at: usize,
}

impl Read for BlockReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.buf.len() {
            if self.pos >= self.size {
                return Ok(0);
            }
            let end = (self.pos + self.inner.block_size).min(self.size);
            self.buf = self.inner.read_range(&self.loc, self.pos..end).map_err(std::io::Error::other)?;
            self.at = 0;
            self.pos = end;
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// An object being written: one PUT when small, else a multipart upload whose parts go up in
/// the background while the caller writes. Dropped unfinished, the upload is aborted.
struct ObjectWriter {
    inner: Arc<Inner>,
    loc: Location,
    path: ObjectPath,
    buf: Vec<u8>,
    upload: Option<WriteMultipart>,
    size: u64,
    done: bool,
}

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter").field("loc", &self.loc).field("size", &self.size).finish_non_exhaustive()
    }
}

impl ObjectWriter {
    fn io(&self, e: &object_store::Error) -> std::io::Error {
        std::io::Error::other(self.inner.error(e, &self.loc, "PUT"))
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.done {
            return Err(std::io::Error::other("write after finish"));
        }
        self.size += data.len() as u64;
        if let Some(up) = &mut self.upload {
            let _guard = runtime().enter();
            block_on(up.wait_for_capacity(PARTS_IN_FLIGHT)).map_err(|e| std::io::Error::other(self.inner.error(&e, &self.loc, "PUT")))?;
            up.write(data);
            return Ok(data.len());
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PART_SIZE {
            let up = block_on(self.inner.store.put_multipart(&self.path)).map_err(|e| self.io(&e))?;
            let mut w = WriteMultipart::new_with_chunk_size(up, PART_SIZE);
            {
                let _guard = runtime().enter();
                w.write(&self.buf);
            }
            self.buf = Vec::new();
            self.upload = Some(w);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl FileWriter for ObjectWriter {
    fn finish(mut self: Box<Self>) -> Result<u64> {
        self.done = true;
        let inner = self.inner.clone();
        let r = match self.upload.take() {
            Some(up) => block_on(up.finish()).map(|_| ()),
            None => {
                let payload = PutPayload::from(Bytes::from(std::mem::take(&mut self.buf)));
                block_on(inner.store.put_opts(&self.path, payload, PutOptions::default())).map(|_| ())
            }
        };
        inner.forget(self.path.as_ref());
        r.map_err(|e| inner.error(&e, &self.loc, "PUT"))?;
        Ok(self.size)
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        if let Some(up) = self.upload.take() {
            // Abandoned: the parts already uploaded are removed (best effort).
            let _ = block_on(up.abort());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory store with tiny blocks, so reads cross block boundaries.
    fn memory(block_size: u64) -> ObjectStorage {
        let mut s = ObjectStorage::from_store(Arc::new(object_store::memory::InMemory::new()), "s3://b");
        Arc::get_mut(&mut s.inner).unwrap().block_size = block_size;
        s
    }

    fn loc(s: &str) -> Location {
        Location::new(&format!("s3://b/{s}"))
    }

    #[test]
    fn ranged_reads_across_blocks_and_streams() {
        let s = memory(1000);
        let data: Vec<u8> = (0..25_000u32).map(|i| (i % 251) as u8).collect();
        s.put(&loc("job/chk-1/x"), &data, PutMode::Overwrite).unwrap();
        for (a, b) in [(0, 1), (999, 1001), (0, 25_000), (24_999, 25_000), (1500, 4500), (7, 7)] {
            assert_eq!(s.read_range(&loc("job/chk-1/x"), a..b).unwrap(), &data[a as usize..b as usize], "{a}..{b}");
        }
        assert!(s.read_range(&loc("job/chk-1/x"), 24_000..25_001).is_err());
        let mut all = Vec::new();
        s.open(&loc("job/chk-1/x")).unwrap().read_to_end(&mut all).unwrap();
        assert_eq!(all, data);
        for start in [0u64, 1, 999, 1000, 24_999, 25_000, 30_000] {
            let mut tail = Vec::new();
            s.open_at(&loc("job/chk-1/x"), start).unwrap().read_to_end(&mut tail).unwrap();
            assert_eq!(tail, &data[(start as usize).min(data.len())..], "from {start}");
        }
        assert!(matches!(s.read(&loc("job/chk-1/missing")), Err(Error::NotFound { .. })));
    }

    #[test]
    fn directories_listings_and_deletes() {
        let s = memory(1 << 20);
        for k in ["job/chk-1/_metadata", "job/chk-1/a", "job/shared/s1", "job/shared/s2", "jobx/y"] {
            s.put(&loc(k), k.as_bytes(), PutMode::Overwrite).unwrap();
        }
        assert!(s.head(&loc("job")).unwrap().is_dir);
        assert!(!s.head(&loc("job/chk-1/a")).unwrap().is_dir);
        assert!(matches!(s.head(&loc("jo")), Err(Error::NotFound { .. })));
        let names: Vec<String> = s.list(&loc("job")).unwrap().iter().map(|m| format!("{}{}", m.location, if m.is_dir { "/" } else { "" })).collect();
        assert_eq!(names, ["s3://b/job/chk-1/", "s3://b/job/shared/"]);
        let mut files = Vec::new();
        s.list_files(&loc("job"), &mut |p| {
            files.extend(p.into_iter().map(|m| m.location.to_string()));
            Ok(())
        })
        .unwrap();
        files.sort();
        assert_eq!(files.len(), 4, "{files:?}");
        assert!(matches!(s.put(&loc("job/chk-1/_metadata"), b"x", PutMode::Create), Err(Error::AlreadyExists { .. })));
        let failed = s.delete_many(&[loc("job/shared/s1"), loc("job/shared/s2"), loc("job/shared/never")]).unwrap();
        assert!(failed.is_empty(), "{failed:?}");
        assert!(!s.exists(&loc("job/shared/s1")).unwrap());
        s.copy(&loc("job/chk-1/a"), &loc("job/chk-2/a")).unwrap();
        assert_eq!(s.read(&loc("job/chk-2/a")).unwrap(), b"job/chk-1/a");
    }

    #[test]
    fn large_files_stream_out_as_multipart_uploads() {
        let s = memory(1 << 20);
        let data: Vec<u8> = (0..(PART_SIZE * 2 + 12345)).map(|i| (i * 7 % 256) as u8).collect();
        let mut w = s.create(&loc("big")).unwrap();
        for chunk in data.chunks(300_001) {
            w.write_all(chunk).unwrap();
        }
        assert!(!s.exists(&loc("big")).unwrap(), "visible before it was finished");
        assert_eq!(w.finish().unwrap(), data.len() as u64);
        assert_eq!(s.read(&loc("big")).unwrap(), data);
        // Dropped unfinished: nothing appears.
        let mut w = s.create(&loc("abandoned")).unwrap();
        w.write_all(&data).unwrap();
        drop(w);
        assert!(!s.exists(&loc("abandoned")).unwrap());
    }

    #[test]
    fn durations_and_statuses() {
        assert_eq!(duration("k", "30s").unwrap(), Duration::from_secs(30));
        assert_eq!(duration("k", "500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("k", "2m").unwrap(), Duration::from_secs(120));
        assert_eq!(duration("k", "7").unwrap(), Duration::from_secs(7));
        assert!(duration("k", "7 parsecs").is_err());
        assert_eq!(status_of("Error performing GET http://x in 3s - Server returned non-2xx status code: 503 Service Unavailable: SlowDown"), Some(503));
        assert_eq!(status_of("connection refused"), None);
    }
}
