//! The pyo3 layer: argument conversion, GIL release, output buffers, exceptions. No cryptography here.
//!
//! Inputs are borrowed through the buffer protocol (`bytes`, `bytearray`, `memoryview`, ... of unsigned
//! bytes, C-contiguous) without a copy. Outputs are `bytes` objects allocated once at their final size and
//! filled in place. Work above `GIL_THRESHOLD` bytes runs with the GIL released, once per call, on the
//! core's thread pool; the released closures touch no Python object. Smaller work runs on the calling
//! thread, sequentially, GIL held: handing it to the pool would make the caller wait, GIL held, for a
//! pool thread to be scheduled, which under load costs far more than the work (measured: a 16 KiB
//! deposit spent about 0.45 ms of GIL time waiting so). A caller must not resize or write a
//! `bytearray` it passed while the call runs.

use crate::error::Error;
use crate::ingest as fused;
use crate::{chunk, digest, leaf, merkle, note, receipt, seal, sign};
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use pyo3::{ffi, import_exception};
use std::sync::{Arc, RwLock};

import_exception!(vaultd.errors, IntegrityError);
import_exception!(vaultd.errors, InvalidArgument);
import_exception!(vaultd.errors, ResourceExhausted);

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::InvalidArgument(_) => InvalidArgument::new_err(e.to_string()),
            Error::Integrity { .. } => IntegrityError::new_err(e.to_string()),
            Error::Exhausted(_) => ResourceExhausted::new_err(e.to_string()),
        }
    }
}

/// The store writer's thread runs the journal's per-commit calls (receipts, the head's check, its
/// signature) before each commit, and every deposit waits for that thread. Letting the GIL go lets a
/// gRPC thread take it, and the writer then waits until that thread lets it go again: with eight
/// threads wanting the GIL beside it, the journal's work before a commit of one deposit took 177 us
/// with those calls letting the GIL go and about 145 us with them keeping it (71 us alone). So they
/// keep it, except receipts for more than this many leaves (about 3 us each alone).
const WRITER_GIL_ITEMS: usize = 8;

/// Below this many bytes of work a call keeps the GIL and runs on the calling thread: releasing and
/// re-taking the GIL, or a trip through the pool, costs more.
const GIL_THRESHOLD: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------------
// Thread pool

static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

fn build_pool(n: usize) -> PyResult<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("vaultcore-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| PyValueError::new_err(format!("cannot start the thread pool: {e}")))
}

fn pool() -> PyResult<Arc<rayon::ThreadPool>> {
    if let Some(p) = POOL.read().unwrap().as_ref() {
        return Ok(p.clone());
    }
    let mut w = POOL.write().unwrap();
    if let Some(p) = w.as_ref() {
        return Ok(p.clone());
    }
    let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let p = build_pool(n)?;
    *w = Some(p.clone());
    Ok(p)
}

/// Runs `f(parallel)`: from `GIL_THRESHOLD` bytes of `work` on, on the pool with the GIL released and
/// `parallel` true; below, on the calling thread with `parallel` false (then `f` must not use rayon:
/// outside a pool it would start rayon's global one).
fn run<T: Send, F: FnOnce(bool) -> T + Send>(py: Python<'_>, work: usize, f: F) -> PyResult<T> {
    if work >= GIL_THRESHOLD {
        let p = pool()?;
        Ok(py.detach(|| p.install(|| f(true))))
    } else {
        Ok(f(false))
    }
}

/// Runs `f` on the pool with the GIL released, whatever its size: for work whose parallel code has
/// no sequential twin (the signature batches); the GIL is free while the caller waits for the pool.
fn run_on_pool<T: Send, F: FnOnce() -> T + Send>(py: Python<'_>, f: F) -> PyResult<T> {
    let p = pool()?;
    Ok(py.detach(|| p.install(f)))
}

/// Runs `f` on the calling thread (single-item work that has nothing to spread), with the GIL released
/// when `work` is large enough.
fn run_here<T: Send, F: FnOnce() -> T + Send>(py: Python<'_>, work: usize, f: F) -> T {
    if work >= GIL_THRESHOLD {
        py.detach(f)
    } else {
        f()
    }
}

/// Sets how many threads batch calls use (1 = no parallelism). Takes effect for the next call.
#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    if n == 0 || n > 1024 {
        return Err(InvalidArgument::new_err("the number of threads must be in 1..=1024"));
    }
    let p = build_pool(n)?;
    *POOL.write().unwrap() = Some(p);
    Ok(())
}

/// How many threads batch calls use.
#[pyfunction]
fn num_threads() -> PyResult<usize> {
    Ok(pool()?.current_num_threads())
}

/// The CPU features the core detected at run time and uses.
#[pyfunction]
fn cpu_features() -> Vec<&'static str> {
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => { $( if std::is_x86_feature_detected!($f) { v.push($f); } )* };
        }
        probe!("aes", "pclmulqdq", "avx", "avx2", "vaes", "vpclmulqdq", "sha", "sse4.1", "avx512f");
    }
    v
}

// ---------------------------------------------------------------------------------------------------
// Buffers

/// A borrowed, read-only view of a Python buffer. Lives as long as the PyBuffer (which holds the export).
fn view(b: &PyBuffer<u8>) -> PyResult<&[u8]> {
    if !b.is_c_contiguous() {
        return Err(InvalidArgument::new_err("buffers must be C-contiguous"));
    }
    // SAFETY: the buffer export is held by `b` for the lifetime of the returned slice.
    Ok(unsafe { std::slice::from_raw_parts(b.buf_ptr() as *const u8, b.len_bytes()) })
}

fn views(bs: &[PyBuffer<u8>]) -> PyResult<Vec<&[u8]>> {
    bs.iter().map(view).collect()
}

/// A pointer that may cross into the pool's threads: each points into a distinct, fresh `bytes` object.
#[derive(Clone, Copy)]
struct OutPtr(*mut u8, usize);
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// SAFETY: the object behind the pointer is alive, not yet shared, and each OutPtr is used by one thread.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self) -> &mut [u8] {
        std::slice::from_raw_parts_mut(self.0, self.1)
    }
}

/// A new, not yet shared `bytes` of `len` bytes (contents unset) and a pointer to fill it.
fn new_bytes(py: Python<'_>, len: usize) -> PyResult<(Bound<'_, PyBytes>, OutPtr)> {
    // SAFETY: PyBytes_FromStringAndSize(NULL, n) returns a new bytes object whose buffer the caller fills
    // before anyone else sees it.
    unsafe {
        let ptr = ffi::PyBytes_FromStringAndSize(std::ptr::null(), len as ffi::Py_ssize_t);
        let obj = Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked::<PyBytes>();
        let data = ffi::PyBytes_AsString(obj.as_ptr()) as *mut u8;
        Ok((obj, OutPtr(data, len)))
    }
}

fn bytes_list<'py, T: AsRef<[u8]>>(py: Python<'py>, items: &[T]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, items.iter().map(|i| PyBytes::new(py, i.as_ref())))
}

fn same_len(n: usize, others: &[usize], what: &str) -> PyResult<()> {
    if others.iter().any(|&m| m != n) {
        return Err(InvalidArgument::new_err(format!("{what} must all have the same length")));
    }
    Ok(())
}

fn key32(b: &[u8], what: &str) -> PyResult<[u8; 32]> {
    Ok(fused::key32(b, what)?)
}

// ---------------------------------------------------------------------------------------------------
// Chunking and digests

#[pyfunction]
#[pyo3(signature = (data, min_size = chunk::DEFAULT_MIN, avg_size = chunk::DEFAULT_AVG, max_size = chunk::DEFAULT_MAX))]
fn chunk_boundaries(py: Python<'_>, data: PyBuffer<u8>, min_size: usize, avg_size: usize, max_size: usize) -> PyResult<Vec<usize>> {
    let d = view(&data)?;
    Ok(run(py, d.len(), |_| chunk::boundaries(d, min_size, avg_size, max_size))??)
}

fn check_len(length: usize) -> PyResult<()> {
    if length == 0 || length > 1 << 20 {
        return Err(InvalidArgument::new_err("digest length must be in 1..=1048576"));
    }
    Ok(())
}

#[pyfunction]
#[pyo3(name = "blake3", signature = (data, length = 32))]
fn blake3_hash<'py>(py: Python<'py>, data: PyBuffer<u8>, length: usize) -> PyResult<Bound<'py, PyBytes>> {
    check_len(length)?;
    let d = view(&data)?;
    let h = run(py, d.len(), |_| digest::blake3(d, length))?;
    Ok(PyBytes::new(py, &h))
}

#[pyfunction]
#[pyo3(signature = (key, data, length = 32))]
fn blake3_keyed<'py>(py: Python<'py>, key: PyBuffer<u8>, data: PyBuffer<u8>, length: usize) -> PyResult<Bound<'py, PyBytes>> {
    check_len(length)?;
    let k = zeroize::Zeroizing::new(key32(view(&key)?, "a BLAKE3 key")?);
    let d = view(&data)?;
    let h = run(py, d.len(), |_| digest::blake3_keyed(&k, d, length))?;
    Ok(PyBytes::new(py, &h))
}

#[pyfunction]
#[pyo3(signature = (context, material, length = 32))]
fn blake3_derive_key<'py>(py: Python<'py>, context: &str, material: PyBuffer<u8>, length: usize) -> PyResult<Bound<'py, PyBytes>> {
    check_len(length)?;
    let d = view(&material)?;
    let mut h = zeroize::Zeroizing::new(run(py, d.len(), |_| digest::blake3_derive_key(context, d, length))?);
    let out = PyBytes::new(py, &h);
    use zeroize::Zeroize;
    h.zeroize();
    Ok(out)
}

#[pyfunction]
fn sha256<'py>(py: Python<'py>, data: PyBuffer<u8>) -> PyResult<Bound<'py, PyBytes>> {
    let d = view(&data)?;
    let h = run(py, d.len(), |_| digest::sha256(d))?;
    Ok(PyBytes::new(py, &h))
}

/// Streaming SHA-256 of a whole document.
#[pyclass(module = "vaultd._vaultcore", frozen)]
struct Sha256Hasher {
    inner: std::sync::Mutex<digest::Sha256Hasher>,
}

#[pymethods]
impl Sha256Hasher {
    #[new]
    #[pyo3(signature = (data = None))]
    fn new(py: Python<'_>, data: Option<PyBuffer<u8>>) -> PyResult<Self> {
        let h = Sha256Hasher { inner: std::sync::Mutex::new(digest::Sha256Hasher::new()) };
        if let Some(d) = data {
            h.update(py, d)?;
        }
        Ok(h)
    }

    fn update(&self, py: Python<'_>, data: PyBuffer<u8>) -> PyResult<()> {
        let d = view(&data)?;
        let m = &self.inner;
        // The lock is taken and released on the same side of the GIL release (no lock-order cycle
        // with a thread that holds the GIL and waits for this hasher).
        if d.len() >= GIL_THRESHOLD {
            py.detach(|| m.lock().unwrap().update(d));
        } else {
            m.lock().unwrap().update(d);
        }
        Ok(())
    }

    fn digest<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.lock().unwrap().digest())
    }

    fn hexdigest(&self) -> String {
        self.inner.lock().unwrap().digest().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn copy(&self) -> Self {
        Sha256Hasher { inner: std::sync::Mutex::new(self.inner.lock().unwrap().clone()) }
    }
}

/// Streaming BLAKE3 (plain, or keyed with a 32-byte key) of a whole document; the state (and key) is
/// zeroized on drop.
#[pyclass(module = "vaultd._vaultcore", frozen)]
struct Blake3Hasher {
    inner: std::sync::Mutex<digest::Blake3Hasher>,
}

#[pymethods]
impl Blake3Hasher {
    #[new]
    #[pyo3(signature = (data = None, *, key = None))]
    fn new(py: Python<'_>, data: Option<PyBuffer<u8>>, key: Option<PyBuffer<u8>>) -> PyResult<Self> {
        let k = match key {
            Some(k) => Some(zeroize::Zeroizing::new(key32(view(&k)?, "a BLAKE3 key")?)),
            None => None,
        };
        let h = Blake3Hasher { inner: std::sync::Mutex::new(digest::Blake3Hasher::new(k.as_deref())) };
        if let Some(d) = data {
            h.update(py, d)?;
        }
        Ok(h)
    }

    fn update(&self, py: Python<'_>, data: PyBuffer<u8>) -> PyResult<()> {
        let d = view(&data)?;
        let m = &self.inner;
        let p = pool()?;
        // The lock is taken by the calling thread, never by a pool thread: a pool thread blocked on it
        // while the holder's parallel hashing waits for that pool thread would deadlock.
        run_here(py, d.len(), || {
            let mut g = m.lock().unwrap();
            let h: &mut digest::Blake3Hasher = &mut g;
            if d.len() >= digest::RAYON_THRESHOLD {
                p.install(|| h.update(d))
            } else {
                h.update(d)
            }
        });
        Ok(())
    }

    #[pyo3(signature = (length = 32))]
    fn digest<'py>(&self, py: Python<'py>, length: usize) -> PyResult<Bound<'py, PyBytes>> {
        check_len(length)?;
        Ok(PyBytes::new(py, &self.inner.lock().unwrap().digest(length)))
    }

    #[pyo3(signature = (length = 32))]
    fn hexdigest(&self, length: usize) -> PyResult<String> {
        check_len(length)?;
        Ok(self.inner.lock().unwrap().digest(length).iter().map(|b| format!("{b:02x}")).collect())
    }

    fn copy(&self) -> Self {
        Blake3Hasher { inner: std::sync::Mutex::new(self.inner.lock().unwrap().clone()) }
    }
}

// ---------------------------------------------------------------------------------------------------
// AEAD

#[pyfunction]
fn aead_seal<'py>(py: Python<'py>, key: PyBuffer<u8>, nonce: PyBuffer<u8>, plaintext: PyBuffer<u8>, aad: PyBuffer<u8>) -> PyResult<Bound<'py, PyBytes>> {
    let k = seal::AeadKey::new(view(&key)?)?;
    let (n, p, a) = (view(&nonce)?, view(&plaintext)?, view(&aad)?);
    if n.len() != seal::NONCE_LEN {
        return Err(Error::invalid(format!("an AES-GCM nonce is 12 bytes, got {}", n.len())).into());
    }
    let (obj, out) = new_bytes(py, p.len() + seal::TAG_LEN)?;
    run_here(py, p.len(), || k.seal_into(n, a, p, unsafe { out.slice() }))?;
    Ok(obj)
}

#[pyfunction]
fn aead_open<'py>(py: Python<'py>, key: PyBuffer<u8>, nonce: PyBuffer<u8>, ciphertext: PyBuffer<u8>, aad: PyBuffer<u8>) -> PyResult<Bound<'py, PyBytes>> {
    let k = seal::AeadKey::new(view(&key)?)?;
    let (n, c, a) = (view(&nonce)?, view(&ciphertext)?, view(&aad)?);
    if n.len() != seal::NONCE_LEN {
        return Err(Error::invalid(format!("an AES-GCM nonce is 12 bytes, got {}", n.len())).into());
    }
    if c.len() < seal::TAG_LEN {
        return Err(Error::Integrity { index: None, what: "sealed data shorter than the tag" }.into());
    }
    let (obj, out) = new_bytes(py, c.len() - seal::TAG_LEN)?;
    run_here(py, c.len(), || k.open_into(n, a, c, unsafe { out.slice() }))?;
    Ok(obj)
}

/// Keys of a batch, one schedule per distinct consecutive key (a batch under one key builds one).
fn batch_keys(keys: &[&[u8]]) -> PyResult<Vec<Arc<seal::AeadKey>>> {
    let mut out: Vec<Arc<seal::AeadKey>> = Vec::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        if i > 0 && keys[i - 1] == *k {
            let prev = out[i - 1].clone();
            out.push(prev);
        } else {
            out.push(Arc::new(seal::AeadKey::new(k).map_err(|e| e.at(i))?));
        }
    }
    Ok(out)
}

#[pyfunction]
fn aead_seal_batch<'py>(
    py: Python<'py>,
    keys: Vec<PyBuffer<u8>>,
    nonces: Vec<PyBuffer<u8>>,
    plaintexts: Vec<PyBuffer<u8>>,
    aads: Vec<PyBuffer<u8>>,
) -> PyResult<Bound<'py, PyList>> {
    same_len(keys.len(), &[nonces.len(), plaintexts.len(), aads.len()], "keys, nonces, plaintexts and aads")?;
    let (kv, nv, pv, av) = (views(&keys)?, views(&nonces)?, views(&plaintexts)?, views(&aads)?);
    let ks = batch_keys(&kv)?;
    let mut objs = Vec::with_capacity(pv.len());
    let mut outs = Vec::with_capacity(pv.len());
    for (i, p) in pv.iter().enumerate() {
        if nv[i].len() != seal::NONCE_LEN {
            return Err(Error::invalid("an AES-GCM nonce is 12 bytes").at(i).into());
        }
        let (o, ptr) = new_bytes(py, p.len() + seal::TAG_LEN)?;
        objs.push(o);
        outs.push(ptr);
    }
    let total: usize = pv.iter().map(|p| p.len()).sum();
    run(py, total, |parallel| {
        use rayon::prelude::*;
        let one = |i: usize| ks[i].seal_into(nv[i], av[i], pv[i], unsafe { outs[i].slice() }).map_err(|e| e.at(i));
        if parallel {
            (0..pv.len()).into_par_iter().try_for_each(one)
        } else {
            (0..pv.len()).try_for_each(one)
        }
    })??;
    PyList::new(py, objs)
}

/// Opens items `0..n` (in parallel with `parallel`); on failure, the error of the lowest failing index.
fn open_all(n: usize, parallel: bool, f: impl Fn(usize) -> Result<(), Error> + Sync) -> Result<(), Error> {
    use rayon::prelude::*;
    let failed = |i: usize| f(i).err().map(|e| e.at(i));
    let errs: Vec<Error> =
        if parallel { (0..n).into_par_iter().filter_map(failed).collect() } else { (0..n).filter_map(failed).collect() };
    match errs.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[pyfunction]
fn aead_open_batch<'py>(
    py: Python<'py>,
    keys: Vec<PyBuffer<u8>>,
    nonces: Vec<PyBuffer<u8>>,
    ciphertexts: Vec<PyBuffer<u8>>,
    aads: Vec<PyBuffer<u8>>,
) -> PyResult<Bound<'py, PyList>> {
    same_len(keys.len(), &[nonces.len(), ciphertexts.len(), aads.len()], "keys, nonces, ciphertexts and aads")?;
    let (kv, nv, cv, av) = (views(&keys)?, views(&nonces)?, views(&ciphertexts)?, views(&aads)?);
    let ks = batch_keys(&kv)?;
    let mut objs = Vec::with_capacity(cv.len());
    let mut outs = Vec::with_capacity(cv.len());
    for (i, c) in cv.iter().enumerate() {
        if nv[i].len() != seal::NONCE_LEN {
            return Err(Error::invalid("an AES-GCM nonce is 12 bytes").at(i).into());
        }
        // Too short for a tag: refused in the parallel pass below, in index order with the other failures.
        let (o, ptr) = new_bytes(py, c.len().saturating_sub(seal::TAG_LEN))?;
        objs.push(o);
        outs.push(ptr);
    }
    let total: usize = cv.iter().map(|c| c.len()).sum();
    run(py, total, |parallel| open_all(cv.len(), parallel, |i| ks[i].open_into(nv[i], av[i], cv[i], unsafe { outs[i].slice() })))??;
    PyList::new(py, objs)
}

/// An AES-256-GCM key that picks its own nonces (see `seal::NonceSealer`); the key is zeroized on drop.
#[pyclass(module = "vaultd._vaultcore", frozen)]
struct SealingKey {
    inner: seal::NonceSealer,
}

#[pymethods]
impl SealingKey {
    #[new]
    fn new(key: PyBuffer<u8>) -> PyResult<Self> {
        Ok(SealingKey { inner: seal::NonceSealer::new(view(&key)?)? })
    }

    /// `nonce (12) || ciphertext || tag (16)` under a fresh random nonce.
    #[pyo3(signature = (plaintext, aad = None))]
    fn seal<'py>(&self, py: Python<'py>, plaintext: PyBuffer<u8>, aad: Option<PyBuffer<u8>>) -> PyResult<Bound<'py, PyBytes>> {
        let p = view(&plaintext)?;
        let a = match &aad {
            Some(a) => view(a)?,
            None => &[],
        };
        self.inner.reserve(1)?;
        let (obj, out) = new_bytes(py, seal::NONCE_LEN + p.len() + seal::TAG_LEN)?;
        let key = self.inner.key();
        run_here(py, p.len(), || {
            let o = unsafe { out.slice() };
            let (nonce, rest) = o.split_at_mut(seal::NONCE_LEN);
            seal::random_bytes(nonce);
            key.seal_into(nonce, a, p, rest)
        })?;
        Ok(obj)
    }

    /// Opens the output of `seal`; raises IntegrityError if anything was changed.
    #[pyo3(signature = (sealed, aad = None))]
    fn open<'py>(&self, py: Python<'py>, sealed: PyBuffer<u8>, aad: Option<PyBuffer<u8>>) -> PyResult<Bound<'py, PyBytes>> {
        let s = view(&sealed)?;
        let a = match &aad {
            Some(a) => view(a)?,
            None => &[],
        };
        if s.len() < seal::NONCE_LEN + seal::TAG_LEN {
            return Err(Error::Integrity { index: None, what: "sealed data shorter than nonce and tag" }.into());
        }
        let (obj, out) = new_bytes(py, s.len() - seal::NONCE_LEN - seal::TAG_LEN)?;
        let key = self.inner.key();
        run_here(py, s.len(), || key.open_into(&s[..seal::NONCE_LEN], a, &s[seal::NONCE_LEN..], unsafe { out.slice() }))?;
        Ok(obj)
    }

    /// Messages sealed by this object so far.
    #[getter]
    fn used(&self) -> u64 {
        self.inner.used()
    }

    /// The most messages this object seals before it refuses (2**32).
    #[classattr]
    fn limit() -> u64 {
        seal::RANDOM_NONCE_LIMIT
    }
}

// ---------------------------------------------------------------------------------------------------
// Ingest

/// One chunk of an ingested buffer. `nonce`, `sealed` and `stored` are None when the chunk id was
/// known; `sealed` (ciphertext || tag) and `stored` (nonce || ciphertext || tag, the form a store
/// keeps) are read-only memoryviews into the one `bytes` that holds every sealed chunk of the call.
#[pyclass(module = "vaultd._vaultcore", frozen, get_all)]
struct Chunk {
    offset: usize,
    length: usize,
    chunk_id: Py<PyBytes>,
    nonce: Option<Py<PyBytes>>,
    sealed: Option<Py<PyAny>>,
    stored: Option<Py<PyAny>>,
}

/// Asks the kernel for transparent huge pages behind a large, not yet touched output buffer: one fault
/// per 2 MiB instead of one per 4 KiB page (the faults of fresh output pages dominated ingest at small
/// chunk sizes). Advisory only; without it, or on other systems, the buffer is used as is.
fn advise_huge_pages(ptr: *mut u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        if len < 2 * HUGE {
            return;
        }
        let start = (ptr as usize).div_ceil(HUGE) * HUGE;
        let end = (ptr as usize + len) / HUGE * HUGE;
        if end > start {
            // SAFETY: [start, end) lies inside the allocation behind `ptr`; MADV_HUGEPAGE changes no contents.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

#[pymethods]
impl Chunk {
    fn __repr__(&self) -> String {
        format!("Chunk(offset={}, length={}, sealed={})", self.offset, self.length, self.sealed.is_some())
    }
}

#[pyfunction]
#[pyo3(signature = (data, dedup_key, data_key, aad_prefix, *, min_size = chunk::DEFAULT_MIN, avg_size = chunk::DEFAULT_AVG,
                    max_size = chunk::DEFAULT_MAX, last = true, known = None, hasher = None))]
#[allow(clippy::too_many_arguments)]
fn ingest<'py>(
    py: Python<'py>,
    data: PyBuffer<u8>,
    dedup_key: PyBuffer<u8>,
    data_key: PyBuffer<u8>,
    aad_prefix: PyBuffer<u8>,
    min_size: usize,
    avg_size: usize,
    max_size: usize,
    last: bool,
    known: Option<Bound<'py, PyAny>>,
    hasher: Option<PyRef<'py, Sha256Hasher>>,
) -> PyResult<Bound<'py, PyList>> {
    let d = view(&data)?;
    let dk = zeroize::Zeroizing::new(key32(view(&dedup_key)?, "dedup_key")?);
    let key = seal::AeadKey::new(view(&data_key)?)?;
    let prefix = view(&aad_prefix)?;
    let sizes = (min_size, avg_size, max_size);
    chunk::check_sizes(min_size, avg_size, max_size)?;
    let hasher_lock = hasher.as_ref().map(|h| &h.inner);

    // Pass 1, GIL released: cut points (segments in parallel); with `known`, the ids too, so the
    // caller can say which chunks it has. The document digest runs beside it on another thread.
    let with_known = known.is_some();
    let parallel = d.len() >= GIL_THRESHOLD;
    let p = pool()?;
    let (spans, ids) = run_here(py, d.len(), || -> Result<_, Error> {
        // Locked by the calling thread (see Blake3Hasher.update), then the work goes to the pool.
        let mut h = hasher_lock.map(|m| m.lock().unwrap());
        let hs = h.as_deref_mut();
        let pass1 = || {
            let spans = fused::spans(d, sizes, last)?;
            let consumed = if last { d.len() } else { spans.last().map_or(0, |&(o, l)| o + l) };
            let identify = || if with_known { Some(fused::identify(d, &dk, &spans, parallel)) } else { None };
            let digest = || {
                if let Some(h) = hs {
                    h.update(&d[..consumed])
                }
            };
            let ids = if parallel { rayon::join(identify, digest).0 } else { (identify(), digest()).0 };
            Ok((spans, ids))
        };
        if parallel { p.install(pass1) } else { pass1() }
    })?;

    // With the GIL: which ids the caller has; the rest are sealed into ONE `bytes` (each chunk as
    // nonce || ciphertext || tag, its stored form), allocated once: a fresh buffer per chunk cost a page
    // fault per 4 KiB chunk.
    let mut ids_out: Vec<(Bound<'py, PyBytes>, bool)> = Vec::with_capacity(spans.len());
    let mut ptrs: Vec<(usize, usize, OutPtr, usize)> = Vec::with_capacity(spans.len());
    let mut total = 0usize;
    for (i, &(offset, length)) in spans.iter().enumerate() {
        let (id, idp) = match &ids {
            Some(ids) => {
                let b = PyBytes::new(py, &ids[i].id);
                let have = known.as_ref().map(|k| k.contains(&b)).transpose()?.unwrap_or(false);
                if have {
                    ids_out.push((b, false));
                    continue;
                }
                (b, None)
            }
            None => {
                let (b, p) = new_bytes(py, 32)?;
                (b, Some(p))
            }
        };
        // When the id is already computed, the job reads it from the bytes object just made.
        let idp = idp.unwrap_or_else(|| OutPtr(unsafe { ffi::PyBytes_AsString(id.as_ptr()) } as *mut u8, 32));
        ptrs.push((offset, length, idp, total));
        total += seal::NONCE_LEN + length + seal::TAG_LEN;
        ids_out.push((id, true));
    }
    let (sealed_all, base) = new_bytes(py, total)?;
    advise_huge_pages(base.0, total);

    // Pass 2, GIL released: (ids and) seals in parallel, written in place.
    let work: usize = ptrs.iter().map(|p| p.1).sum();
    let dk_for_ids = if with_known { None } else { Some(&*dk) };
    run(py, work, |parallel| {
        // SAFETY: `sealed_all` is alive and not yet shared; the jobs' ranges are disjoint.
        let mut rest = unsafe { base.slice() };
        let mut jobs: Vec<fused::SealJob> = Vec::with_capacity(ptrs.len());
        for (offset, length, idp, _) in &ptrs {
            let (nonce, r) = std::mem::take(&mut rest).split_at_mut(seal::NONCE_LEN);
            let (out, r) = r.split_at_mut(length + seal::TAG_LEN);
            rest = r;
            jobs.push(fused::SealJob { offset: *offset, length: *length, id: unsafe { idp.slice() }, nonce, out });
        }
        fused::seal_chunks(d, dk_for_ids, &key, prefix, &mut jobs, parallel)
    })??;

    // Views into the one buffer: nonce (copied out, 12 bytes) and sealed = ciphertext || tag.
    let all = sealed_all.as_bytes();
    let whole = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyMemoryView_FromObject(sealed_all.as_ptr()))? };
    let mut next = ptrs.iter();
    let items: Vec<Bound<'py, Chunk>> = spans
        .iter()
        .zip(ids_out)
        .map(|(&(offset, length), (id, sealed))| {
            let (nonce, view, stored) = if sealed {
                let &(_, _, _, at) = next.next().expect("one job per sealed chunk");
                let n = PyBytes::new(py, &all[at..at + seal::NONCE_LEN]);
                let slice = |from: usize, to: usize| -> PyResult<Py<PyAny>> {
                    let (from, to) = (from as ffi::Py_ssize_t, to as ffi::Py_ssize_t);
                    // SAFETY: `whole` is a live memoryview; the slice is a new reference or an error.
                    let v = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PySequence_GetSlice(whole.as_ptr(), from, to))? };
                    Ok(v.unbind())
                };
                let end = at + seal::NONCE_LEN + length + seal::TAG_LEN;
                (Some(n.unbind()), Some(slice(at + seal::NONCE_LEN, end)?), Some(slice(at, end)?))
            } else {
                (None, None, None)
            };
            Bound::new(py, Chunk { offset, length, chunk_id: id.unbind(), nonce, sealed: view, stored })
        })
        .collect::<PyResult<_>>()?;
    PyList::new(py, items)
}

/// Opens stored chunks: one `bytes` per chunk, or with `groups` (counts of consecutive chunks, summing
/// to the number of chunks) one `bytes` per group holding its chunks' plaintexts end to end, each
/// opened straight into its place (a read streams fewer, larger messages with no copy to join them).
/// With `field` (a protobuf field number, 1 to 15), each `bytes` is that length-delimited field
/// around the plaintext: an encoded message the transport sends as it is, with no copy to frame it.
#[pyfunction]
#[pyo3(signature = (data_key, dedup_key, aad_prefix, chunk_ids, nonces, sealed, groups = None, field = None))]
#[allow(clippy::too_many_arguments)]
fn open_chunks<'py>(
    py: Python<'py>,
    data_key: PyBuffer<u8>,
    dedup_key: PyBuffer<u8>,
    aad_prefix: PyBuffer<u8>,
    chunk_ids: Vec<PyBuffer<u8>>,
    nonces: Vec<PyBuffer<u8>>,
    sealed: Vec<PyBuffer<u8>>,
    groups: Option<Vec<usize>>,
    field: Option<u8>,
) -> PyResult<Bound<'py, PyList>> {
    if matches!(field, Some(f) if !(1..=15).contains(&f)) {
        return Err(InvalidArgument::new_err("field must be a protobuf field number from 1 to 15"));
    }
    same_len(chunk_ids.len(), &[nonces.len(), sealed.len()], "chunk_ids, nonces and sealed")?;
    let key = seal::AeadKey::new(view(&data_key)?)?;
    let dk = zeroize::Zeroizing::new(key32(view(&dedup_key)?, "dedup_key")?);
    let prefix = view(&aad_prefix)?;
    let (iv, nv, sv) = (views(&chunk_ids)?, views(&nonces)?, views(&sealed)?);
    if let Some(i) = nv.iter().position(|n| n.len() != seal::NONCE_LEN) {
        return Err(Error::invalid("an AES-GCM nonce is 12 bytes").at(i).into());
    }
    let plain_len = |s: &&[u8]| s.len().saturating_sub(seal::TAG_LEN);
    let groups = groups.unwrap_or_else(|| vec![1; sv.len()]);
    if groups.contains(&0) || groups.iter().sum::<usize>() != sv.len() {
        return Err(InvalidArgument::new_err("groups must be positive counts that add up to the number of chunks"));
    }
    let mut objs = Vec::with_capacity(groups.len());
    let mut outs = Vec::with_capacity(sv.len());
    let mut first = 0;
    for &g in &groups {
        let members = &sv[first..first + g];
        let len: usize = members.iter().map(plain_len).sum();
        let mut head = [0u8; 11];
        let mut at = 0;
        if let Some(f) = field {
            head[0] = (f << 3) | 2; // wire type 2: length-delimited
            at = 1;
            let mut v = len as u64;
            loop {
                let b = (v & 0x7f) as u8;
                v >>= 7;
                head[at] = if v == 0 { b } else { b | 0x80 };
                at += 1;
                if v == 0 {
                    break;
                }
            }
        }
        let (o, p) = new_bytes(py, at + len)?;
        // SAFETY: the object is fresh and at least `at` bytes long.
        unsafe { std::ptr::copy_nonoverlapping(head.as_ptr(), p.0, at) };
        for s in members {
            let n = plain_len(s);
            // SAFETY: the sub-slices of one fresh bytes object are disjoint and within its length.
            outs.push(OutPtr(unsafe { p.0.add(at) }, n));
            at += n;
        }
        objs.push(o);
        first += g;
    }
    let total: usize = sv.iter().map(|s| s.len()).sum();
    run(py, total, |parallel| open_all(sv.len(), parallel, |i| fused::open_chunk(&key, &dk, prefix, iv[i], nv[i], sv[i], unsafe { outs[i].slice() })))??;
    PyList::new(py, objs)
}

// ---------------------------------------------------------------------------------------------------
// Signatures

#[pyfunction]
fn ed25519_public_key<'py>(py: Python<'py>, private_key: PyBuffer<u8>) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &sign::ed25519_public_key(view(&private_key)?)?))
}

/// An Ed25519 private key (the 32-byte seed) held in Rust, zeroized on drop: one signature at a
/// time on the calling thread with the GIL released (the journal signs a checkpoint per commit
/// beside the commit's fsync; a pool hand-off would cost more than the signature).
#[pyclass(module = "vaultd._vaultcore", frozen)]
struct Ed25519SigningKey {
    inner: sign::Ed25519Key,
}

#[pymethods]
impl Ed25519SigningKey {
    #[new]
    fn new(private_key: PyBuffer<u8>) -> PyResult<Self> {
        Ok(Ed25519SigningKey { inner: sign::Ed25519Key::new(view(&private_key)?)? })
    }

    /// One signature, GIL held: about 17 us here. The journal signs a checkpoint per group commit on
    /// the store writer's thread, which every deposit waits for; letting the GIL go for so little
    /// work made that thread wait to take it back from a gRPC thread, which under load cost it far
    /// more than the signature (see `WRITER_GIL_ITEMS`).
    fn sign<'py>(&self, py: Python<'py>, message: PyBuffer<u8>) -> PyResult<Bound<'py, PyBytes>> {
        let m = view(&message)?;
        Ok(PyBytes::new(py, &self.inner.sign(m)))
    }

    fn public_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.public_key())
    }

    fn __repr__(&self) -> String {
        "Ed25519SigningKey(<secret>)".to_string()
    }
}

#[pyfunction]
fn ed25519_sign_batch<'py>(py: Python<'py>, private_key: PyBuffer<u8>, messages: Vec<PyBuffer<u8>>) -> PyResult<Bound<'py, PyList>> {
    let k = view(&private_key)?;
    let m = views(&messages)?;
    let sigs = run_on_pool(py, || sign::ed25519_sign_batch(k, &m))??;
    bytes_list(py, &sigs)
}

#[pyfunction]
fn ed25519_verify_batch(py: Python<'_>, public_keys: Vec<PyBuffer<u8>>, messages: Vec<PyBuffer<u8>>, signatures: Vec<PyBuffer<u8>>) -> PyResult<Vec<bool>> {
    let (p, m, s) = (views(&public_keys)?, views(&messages)?, views(&signatures)?);
    Ok(run_on_pool(py, || sign::ed25519_verify_batch(&p, &m, &s))??)
}

#[pyfunction]
fn ecdsa_p256_verify_batch(
    py: Python<'_>,
    public_keys_sec1: Vec<PyBuffer<u8>>,
    messages: Vec<PyBuffer<u8>>,
    signatures: Vec<PyBuffer<u8>>,
    der: bool,
) -> PyResult<Vec<bool>> {
    let (p, m, s) = (views(&public_keys_sec1)?, views(&messages)?, views(&signatures)?);
    Ok(run_on_pool(py, || sign::ecdsa_p256_verify_batch(&p, &m, &s, der))??)
}

// ---------------------------------------------------------------------------------------------------
// Merkle

fn hash32(b: &[u8], what: &str) -> PyResult<merkle::Hash> {
    b.try_into().map_err(|_| InvalidArgument::new_err(format!("{what} is a 32-byte hash, got {} bytes", b.len())))
}

fn leaf_list(leaves: &[PyBuffer<u8>]) -> PyResult<Vec<merkle::Hash>> {
    leaves.iter().enumerate().map(|(i, l)| hash32(view(l)?, &format!("leaf hash {i}"))).collect()
}

/// The canonical bytes of a journal leaf (`leaf.rs`), or None when a field is not valid (the Python
/// encoder then names it). `extra` is sorted by key.
#[pyfunction]
#[pyo3(signature = (operation, vault, name, version, sha256, actor_kind, actor_name, kiosk, time_ns, outcome, extra))]
#[allow(clippy::too_many_arguments)]
fn leaf_encode<'py>(
    py: Python<'py>,
    operation: &str,
    vault: &str,
    name: &str,
    version: u64,
    sha256: Option<&[u8]>,
    actor_kind: &str,
    actor_name: &str,
    kiosk: &str,
    time_ns: u64,
    outcome: &str,
    extra: Vec<(String, Vec<u8>)>,
) -> Option<Bound<'py, PyBytes>> {
    let pairs: Vec<(&str, &[u8])> = extra.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    let f = leaf::Fields {
        operation,
        vault,
        name,
        version,
        sha256: sha256.unwrap_or(&[]),
        actor_kind,
        actor_name,
        kiosk,
        time_ns,
        outcome,
        extra: &pairs,
    };
    leaf::encode(&f).map(|b| PyBytes::new(py, &b))
}

/// The store writer's journal append (`vaultd.journal.tree.MerkleTree.append_at_border`): the record
/// of leaf `index` from the tree's right border `border` (a tuple of hashes, see `merkle::border_record`),
/// its leaf hash, and the border of the tree one leaf larger (the entries not replaced are the same
/// objects). One call, GIL held: about a microsecond of hashing.
#[pyfunction]
fn journal_record<'py>(
    py: Python<'py>,
    index: u64,
    border: &Bound<'py, PyTuple>,
    leaf: PyBuffer<u8>,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyTuple>)> {
    let levels = index.trailing_ones() as usize;
    if border.len() < levels {
        return Err(InvalidArgument::new_err(format!("the border has {} entries; leaf {index} needs {levels}", border.len())));
    }
    let entries: Vec<Bound<'py, PyBytes>> =
        (0..levels).map(|i| Ok(border.get_item(i)?.cast_into::<PyBytes>()?)).collect::<PyResult<_>>()?;
    let left: Vec<&[u8]> = entries.iter().map(|b| b.as_bytes()).collect();
    let (record, lh, h, level) = merkle::border_record(index, &left, view(&leaf)?)
        .ok_or_else(|| InvalidArgument::new_err("a border entry is not a 32-byte hash"))?;
    let mut next: Vec<Bound<'py, PyAny>> = Vec::with_capacity(border.len().max(level + 1));
    for i in 0..border.len().max(level + 1) {
        next.push(if i == level { PyBytes::new(py, &h).into_any() } else { border.get_item(i)? });
    }
    Ok((PyBytes::new(py, &record), PyBytes::new(py, &lh), PyTuple::new(py, next)?))
}

#[pyfunction]
fn merkle_leaf_hash<'py>(py: Python<'py>, data: PyBuffer<u8>) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &merkle::leaf_hash(view(&data)?)))
}

#[pyfunction]
fn merkle_node_hash<'py>(py: Python<'py>, left: PyBuffer<u8>, right: PyBuffer<u8>) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &merkle::node_hash(view(&left)?, view(&right)?)))
}

#[pyfunction]
fn merkle_root<'py>(py: Python<'py>, leaf_hashes: Vec<PyBuffer<u8>>) -> PyResult<Bound<'py, PyBytes>> {
    let l = leaf_list(&leaf_hashes)?;
    let r = run(py, l.len() * 64, |_| merkle::root(&l))?;
    Ok(PyBytes::new(py, &r))
}

#[pyfunction]
fn merkle_inclusion_proof<'py>(py: Python<'py>, leaf_hashes: Vec<PyBuffer<u8>>, index: u64) -> PyResult<Bound<'py, PyList>> {
    let l = leaf_list(&leaf_hashes)?;
    let t = merkle::Tree::from_leaves(&l);
    let p = t.inclusion_proof(index, t.size()).ok_or_else(|| InvalidArgument::new_err("index must be below the tree size"))?;
    bytes_list(py, &p)
}

#[pyfunction]
fn merkle_consistency_proof<'py>(py: Python<'py>, leaf_hashes: Vec<PyBuffer<u8>>, size1: u64) -> PyResult<Bound<'py, PyList>> {
    let l = leaf_list(&leaf_hashes)?;
    let t = merkle::Tree::from_leaves(&l);
    let p = t.consistency_proof(size1, t.size()).ok_or_else(|| InvalidArgument::new_err("size1 must be in 1..=tree size"))?;
    bytes_list(py, &p)
}

#[pyfunction]
fn merkle_verify_inclusion(leaf_hash: PyBuffer<u8>, index: u64, tree_size: u64, proof: Vec<PyBuffer<u8>>, root: PyBuffer<u8>) -> PyResult<bool> {
    Ok(merkle::verify_inclusion(view(&leaf_hash)?, index, tree_size, &views(&proof)?, view(&root)?))
}

#[pyfunction]
fn merkle_verify_consistency(size1: u64, size2: u64, root1: PyBuffer<u8>, root2: PyBuffer<u8>, proof: Vec<PyBuffer<u8>>) -> PyResult<bool> {
    Ok(merkle::verify_consistency(size1, size2, view(&root1)?, view(&root2)?, &views(&proof)?))
}

/// An in-memory RFC 6962 tree keeping every complete-subtree hash: O(1) appends, O(log n) proofs.
#[pyclass(module = "vaultd._vaultcore")]
struct MerkleTree {
    inner: merkle::Tree,
}

#[pymethods]
impl MerkleTree {
    #[new]
    #[pyo3(signature = (leaf_hashes = None))]
    fn new(leaf_hashes: Option<Vec<PyBuffer<u8>>>) -> PyResult<Self> {
        let l = leaf_list(&leaf_hashes.unwrap_or_default())?;
        Ok(MerkleTree { inner: merkle::Tree::from_leaves(&l) })
    }

    /// Appends one leaf hash; returns its index.
    fn append(&mut self, leaf_hash: PyBuffer<u8>) -> PyResult<u64> {
        Ok(self.inner.append(hash32(view(&leaf_hash)?, "a leaf hash")?))
    }

    fn extend(&mut self, leaf_hashes: Vec<PyBuffer<u8>>) -> PyResult<()> {
        for l in leaf_list(&leaf_hashes)? {
            self.inner.append(l);
        }
        Ok(())
    }

    #[getter]
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn __len__(&self) -> usize {
        self.inner.size() as usize
    }

    #[pyo3(signature = (size = None))]
    fn root<'py>(&self, py: Python<'py>, size: Option<u64>) -> PyResult<Bound<'py, PyBytes>> {
        let r = self.inner.root(size.unwrap_or(self.inner.size())).ok_or_else(|| InvalidArgument::new_err("size exceeds the tree"))?;
        Ok(PyBytes::new(py, &r))
    }

    #[pyo3(signature = (index, size = None))]
    fn inclusion_proof<'py>(&self, py: Python<'py>, index: u64, size: Option<u64>) -> PyResult<Bound<'py, PyList>> {
        let p = self
            .inner
            .inclusion_proof(index, size.unwrap_or(self.inner.size()))
            .ok_or_else(|| InvalidArgument::new_err("need index < size <= tree size"))?;
        bytes_list(py, &p)
    }

    #[pyo3(signature = (size1, size2 = None))]
    fn consistency_proof<'py>(&self, py: Python<'py>, size1: u64, size2: Option<u64>) -> PyResult<Bound<'py, PyList>> {
        let p = self
            .inner
            .consistency_proof(size1, size2.unwrap_or(self.inner.size()))
            .ok_or_else(|| InvalidArgument::new_err("need 0 < size1 <= size2 <= tree size"))?;
        bytes_list(py, &p)
    }
}

/// The journal's tree of `size` leaves in memory as the frontier of an earlier tree of `old_size` leaves
/// (a dict `(start, end) -> hash`) and the leaf hashes appended since: the root to sign, the frontier to
/// extend next time, and every proof a batch's receipts need, without reading storage.
#[pyclass(module = "vaultd._vaultcore", frozen)]
struct MerkleExtension {
    inner: merkle::Extension,
}

/// A dict `(start, end) -> 32-byte hash` (a tree's frontier, or what storage holds of it).
fn range_hashes(d: &Bound<'_, PyDict>, what: &str) -> PyResult<Vec<((u64, u64), merkle::Hash)>> {
    let mut out = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let b: PyBuffer<u8> = v.extract()?;
        out.push((k.extract()?, hash32(view(&b)?, what)?));
    }
    Ok(out)
}

/// Receipt items `(kind, index, leaf bytes)` borrowed from their Python buffers.
fn receipt_items(items: &[(String, u64, PyBuffer<u8>)]) -> PyResult<Vec<receipt::Item<'_>>> {
    items.iter().map(|(kind, index, leaf)| Ok(receipt::Item { kind, index: *index, leaf: view(leaf)? })).collect()
}

/// A list of `bytes`, None where there is none.
fn optional_bytes_list(py: Python<'_>, items: Vec<Option<Vec<u8>>>) -> PyResult<Bound<'_, PyList>> {
    let l = PyList::empty(py);
    for r in items {
        match r {
            Some(b) => l.append(PyBytes::new(py, &b))?,
            None => l.append(py.None())?,
        }
    }
    Ok(l)
}

impl MerkleExtension {
    fn hash(&self, start: u64, end: u64) -> PyResult<merkle::Hash> {
        self.inner.mth(start, end).ok_or_else(|| {
            IntegrityError::new_err(format!(
                "journal: subtree [{start}, {end}) is not on the frontier of size {} nor within the tree of size {}",
                self.inner.old_size(),
                self.inner.size()
            ))
        })
    }
}

#[pymethods]
impl MerkleExtension {
    #[new]
    fn new(old_frontier: &Bound<'_, PyDict>, old_size: u64, size: u64, leaf_hashes: Vec<PyBuffer<u8>>) -> PyResult<Self> {
        if size < old_size || size - old_size != leaf_hashes.len() as u64 {
            return Err(InvalidArgument::new_err("journal: an extension needs one leaf hash per appended leaf"));
        }
        let frontier = range_hashes(old_frontier, "a frontier hash")?;
        let leaves = leaf_list(&leaf_hashes)?;
        Ok(MerkleExtension { inner: merkle::Extension::new(&frontier, old_size, &leaves)? })
    }

    #[getter]
    fn old_size(&self) -> u64 {
        self.inner.old_size()
    }

    #[getter]
    fn size(&self) -> u64 {
        self.inner.size()
    }

    /// MTH of leaves `[start, end)` for a range of the RFC 9162 recursions over this tree.
    fn mth<'py>(&self, py: Python<'py>, start: u64, end: u64) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.hash(start, end)?))
    }

    fn root<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let r = self.inner.root().ok_or_else(|| IntegrityError::new_err("journal: the root is not known"))?;
        Ok(PyBytes::new(py, &r))
    }

    /// The frontier of this tree, `(start, end) -> hash`, to extend it later.
    fn frontier<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (start, end) in merkle::frontier_ranges(self.inner.size()) {
            d.set_item((start, end), PyBytes::new(py, &self.hash(start, end)?))?;
        }
        Ok(d)
    }

    /// RFC 9162 PATH(index, D[0:size]) for a leaf appended after `old_size`.
    fn inclusion_proof<'py>(&self, py: Python<'py>, index: u64) -> PyResult<Bound<'py, PyList>> {
        let (old, size) = (self.inner.old_size(), self.inner.size());
        if !(old..size).contains(&index) {
            return Err(InvalidArgument::new_err(format!("journal: leaf {index} is not among the leaves [{old}, {size})")));
        }
        let p = self.inner.inclusion_proof(index).ok_or_else(|| IntegrityError::new_err("journal: a proof hash is not known"))?;
        bytes_list(py, &p)
    }

    /// RFC 9162 PROOF(old_size, D[0:size]) (0 < old_size < size).
    fn consistency_proof<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        if !(0 < self.inner.old_size() && self.inner.old_size() < self.inner.size()) {
            return Err(InvalidArgument::new_err("journal: no consistency proof for these sizes"));
        }
        let p = self.inner.consistency_proof().ok_or_else(|| IntegrityError::new_err("journal: a proof hash is not known"))?;
        bytes_list(py, &p)
    }

    /// Does this tree extend the signed tree of `old_size` leaves with root `old_root` (the RFC 9162
    /// consistency proof from it, made here, verifies), and is every `(start, end) -> hash` of `stored`
    /// (what storage holds of this tree's frontier) the hash this tree has there? Compared in constant
    /// time, GIL held (a few microseconds of hashing; see `WRITER_GIL_ITEMS`).
    fn consistent_with(&self, old_root: PyBuffer<u8>, stored: &Bound<'_, PyDict>) -> PyResult<bool> {
        let old_root = hash32(view(&old_root)?, "the signed root")?;
        let pairs = range_hashes(stored, "a stored frontier hash")?;
        Ok(merkle::extension_is_consistent(&self.inner, &old_root, &pairs))
    }

    /// This tree extended with the hashes of the leaves appended since (the tree the next batch
    /// signs): its frontier taken from here, not from a dict.
    fn extended(&self, leaf_hashes: Vec<PyBuffer<u8>>) -> PyResult<MerkleExtension> {
        let leaves = leaf_list(&leaf_hashes)?;
        let frontier = self.inner.frontier().ok_or_else(|| IntegrityError::new_err("journal: the frontier is not known"))?;
        Ok(MerkleExtension { inner: merkle::Extension::new(&frontier, self.inner.size(), &leaves)? })
    }

    /// The checks of `consistent_with`, then this tree's checkpoint signed with `key` as a C2SP
    /// signed note (`note.rs`), then the receipt of each `(kind, index, leaf bytes)` of `items` under
    /// that note (as `receipts` makes them, format `receipt_format` version `receipt_version`):
    /// `(root, note, receipts)`, or None when a check fails. GIL held for up to `WRITER_GIL_ITEMS`
    /// items (about 20 us, and 3 us per item alone, on the store writer's thread).
    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::type_complexity)]
    fn sign_checkpoint<'py>(
        &self,
        py: Python<'py>,
        old_root: PyBuffer<u8>,
        stored: &Bound<'_, PyDict>,
        origin: &str,
        key: &Ed25519SigningKey,
        key_name: &str,
        key_id: &[u8],
        receipt_format: &str,
        receipt_version: u32,
        items: Vec<(String, u64, PyBuffer<u8>)>,
    ) -> PyResult<Option<(Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyList>)>> {
        let old_root = hash32(view(&old_root)?, "the signed root")?;
        let pairs = range_hashes(stored, "a stored frontier hash")?;
        let list = receipt_items(&items)?;
        let inner = &self.inner;
        let work = || -> Result<Option<(merkle::Hash, Vec<u8>, Vec<Option<Vec<u8>>>)>, crate::error::Error> {
            if !merkle::extension_is_consistent(inner, &old_root, &pairs) {
                return Ok(None);
            }
            let Some(root) = inner.root() else { return Ok(None) };
            let body = note::body(origin, inner.size(), &root)?;
            let signature = key.inner.sign(body.as_bytes());
            let signed = note::signed(&body, key_name, key_id, &signature)?;
            let text = std::str::from_utf8(&signed).expect("a note is laid out from text");
            let (prefix, suffix) = receipt::shared_parts(text, receipt_format, receipt_version, inner.size());
            let receipts = receipt::encode_batch(inner, &root, &prefix, &suffix, &list);
            Ok(Some((root, signed, receipts)))
        };
        let out = if list.len() > WRITER_GIL_ITEMS { py.detach(work) } else { work() }?;
        let Some((root, signed, receipts)) = out else { return Ok(None) };
        Ok(Some((PyBytes::new(py, &root), PyBytes::new(py, &signed), optional_bytes_list(py, receipts)?)))
    }

    /// The canonical receipt of each `(kind, index, leaf bytes)` under this tree, whose root `root` is
    /// signed by the checkpoint `note` (format `receipt_format` version `receipt_version`; see
    /// `receipt.rs`). None for an item whose proof is not in memory or does not lead to `root`.
    /// `kind` must be a validated token.
    fn receipts<'py>(
        &self,
        py: Python<'py>,
        root: PyBuffer<u8>,
        note: &str,
        receipt_format: &str,
        receipt_version: u32,
        items: Vec<(String, u64, PyBuffer<u8>)>,
    ) -> PyResult<Bound<'py, PyList>> {
        let root = hash32(view(&root)?, "the signed root")?;
        let list = receipt_items(&items)?;
        let inner = &self.inner;
        let work = || {
            let (prefix, suffix) = receipt::shared_parts(note, receipt_format, receipt_version, inner.size());
            receipt::encode_batch(inner, &root, &prefix, &suffix, &list)
        };
        // tens of hashes per leaf: the GIL is let go for a large batch only (see WRITER_GIL_ITEMS)
        let out = if list.len() > WRITER_GIL_ITEMS { py.detach(work) } else { work() };
        optional_bytes_list(py, out)
    }
}

/// Registers everything in the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("DEFAULT_MIN_SIZE", chunk::DEFAULT_MIN)?;
    m.add("DEFAULT_AVG_SIZE", chunk::DEFAULT_AVG)?;
    m.add("DEFAULT_MAX_SIZE", chunk::DEFAULT_MAX)?;
    m.add_class::<Sha256Hasher>()?;
    m.add_class::<Blake3Hasher>()?;
    m.add_class::<SealingKey>()?;
    m.add_class::<Ed25519SigningKey>()?;
    m.add_class::<Chunk>()?;
    m.add_class::<MerkleTree>()?;
    m.add_class::<MerkleExtension>()?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_features, m)?)?;
    m.add_function(wrap_pyfunction!(chunk_boundaries, m)?)?;
    m.add_function(wrap_pyfunction!(blake3_hash, m)?)?;
    m.add_function(wrap_pyfunction!(blake3_keyed, m)?)?;
    m.add_function(wrap_pyfunction!(blake3_derive_key, m)?)?;
    m.add_function(wrap_pyfunction!(sha256, m)?)?;
    m.add_function(wrap_pyfunction!(aead_seal, m)?)?;
    m.add_function(wrap_pyfunction!(aead_open, m)?)?;
    m.add_function(wrap_pyfunction!(aead_seal_batch, m)?)?;
    m.add_function(wrap_pyfunction!(aead_open_batch, m)?)?;
    m.add_function(wrap_pyfunction!(ingest, m)?)?;
    m.add_function(wrap_pyfunction!(open_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(ed25519_public_key, m)?)?;
    m.add_function(wrap_pyfunction!(ed25519_sign_batch, m)?)?;
    m.add_function(wrap_pyfunction!(ed25519_verify_batch, m)?)?;
    m.add_function(wrap_pyfunction!(ecdsa_p256_verify_batch, m)?)?;
    m.add_function(wrap_pyfunction!(leaf_encode, m)?)?;
    m.add_function(wrap_pyfunction!(journal_record, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_leaf_hash, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_node_hash, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_root, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_inclusion_proof, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_consistency_proof, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_verify_inclusion, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_verify_consistency, m)?)?;
    Ok(())
}
