//! Observations, memories and their embedding vectors in the LMDB store.
//!
//! On disk (three databases, plus `meta` keys):
//!
//! | db             | key                         | value                                  |
//! |----------------|-----------------------------|----------------------------------------|
//! | `observations` | id u64 BE                   | see `encode_observation`               |
//! | `memories`     | id u64 BE                   | see `encode_memory`                    |
//! | `vectors`      | kind u8 ++ id u64 BE        | `inv_norm f32 LE ++ scale f32 LE ++ i8s` (see `vectors`) |
//! | `meta`         | `memory_next_observation_id`| u64 BE                                 |
//! | `meta`         | `memory_next_memory_id`     | u64 BE                                 |
//! | `meta`         | `memory_embedding_dim`      | u32 BE: set by the first vector stored |
//!
//! Observation value (version 1): `version u8 ++ ts i64 BE ++ kind u8 ++ confidence f32 BE
//! ++ node (len u16 BE ++ bytes) ++ text (len u32 BE ++ bytes) ++ related count u16 BE ++
//! related (len u16 BE ++ bytes)*`.
//!
//! Memory value (version 1): `version u8 ++ flags u8 (bit 0 = active) ++ confidence f32 BE
//! ++ times_confirmed u32 BE ++ first_seen i64 BE ++ last_seen i64 BE ++ node (len u16 BE
//! ++ bytes) ++ fact (len u32 BE ++ bytes)`.
//!
//! Ids start at 1 and are never reused (the next id is persisted in `meta`, and never at or
//! below the last key present). Vector kind byte: 0 = observation, 1 = memory. Every
//! vector has the store's dimension: a vector of another dimension is refused, nothing of
//! that write is stored. Every method is one short transaction.

use std::ops::Bound;

use heed::types::Bytes;
use heed::{Database, MdbError, PutFlags, RoTxn, RwTxn};

use super::replica;
use super::vectors::{self, VectorError};
use super::{Memory, Observation, ObservationType};
use crate::graph::Micros;
use crate::store::codec::Corrupt;
use crate::store::sync_log::{self, RefState, TOMBSTONE};
use crate::store::{Store, StoreError};

type Db = Database<'static, Bytes, Bytes>;

const META_NEXT_OBS: &[u8] = b"memory_next_observation_id";
const META_NEXT_MEM: &[u8] = b"memory_next_memory_id";
const META_DIM: &[u8] = b"memory_embedding_dim";
/// The embedding model the stored vectors came from: vectors of two models are not
/// comparable even when their dimensions agree.
const META_MODEL: &[u8] = b"memory_embedding_model";

pub const FIRST_ID: u64 = 1;
const VERSION: u8 = 1;

/// Which table a vector belongs to (its key's first byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VectorKind {
    Observation = 0,
    Memory = 1,
}

pub fn vector_key(kind: VectorKind, id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = kind as u8;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

/// The id of a vector key of `kind`, None for another kind or a malformed key.
pub fn vector_key_id(kind: VectorKind, k: &[u8]) -> Option<u64> {
    match k {
        [b, rest @ ..] if *b == kind as u8 => rest.try_into().ok().map(u64::from_be_bytes),
        _ => None,
    }
}

#[derive(Debug)]
pub enum MemoryError {
    Store(StoreError),
    /// A vector whose dimension is not the store's.
    Dimension {
        got: usize,
        expected: usize,
    },
    Vector(VectorError),
    /// A field too long for its length prefix.
    TooLong(&'static str),
}

impl std::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemoryError::Store(e) => e.fmt(f),
            MemoryError::Dimension { got, expected } => write!(
                f,
                "embedding dimension {got} does not match the store's {expected}; the embedding \
                 model changed: switch back, or clear the stored vectors and re-embed"
            ),
            MemoryError::Vector(e) => e.fmt(f),
            MemoryError::TooLong(what) => write!(f, "{what} is too long to store"),
        }
    }
}

impl std::error::Error for MemoryError {}

impl From<StoreError> for MemoryError {
    fn from(e: StoreError) -> Self {
        MemoryError::Store(e)
    }
}

impl From<heed::Error> for MemoryError {
    fn from(e: heed::Error) -> Self {
        MemoryError::Store(e.into())
    }
}

impl From<Corrupt> for MemoryError {
    fn from(e: Corrupt) -> Self {
        MemoryError::Store(e.into())
    }
}

impl From<VectorError> for MemoryError {
    fn from(e: VectorError) -> Self {
        MemoryError::Vector(e)
    }
}

impl From<MemoryError> for StoreError {
    fn from(e: MemoryError) -> Self {
        match e {
            MemoryError::Store(e) => e,
            e => StoreError::Lmdb(e.to_string()),
        }
    }
}

/// Counts for status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryCounts {
    /// Observations by type, in `ObservationType::ALL` order.
    pub observations_by_type: [u64; 5],
    pub observations: u64,
    pub memories_active: u64,
    pub memories_inactive: u64,
    pub vectors: u64,
    /// The embedding dimension, once a vector was stored.
    pub dimension: Option<u32>,
}

/// Ids without a vector (to re-embed): all observations, active memories.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MissingVectors {
    pub observations: Vec<u64>,
    pub memories: Vec<u64>,
}

fn kind_byte(k: ObservationType) -> u8 {
    match k {
        ObservationType::Pattern => 0,
        ObservationType::Anomaly => 1,
        ObservationType::Status => 2,
        ObservationType::Summary => 3,
        ObservationType::General => 4,
    }
}

fn kind_from_byte(b: u8) -> Result<ObservationType, Corrupt> {
    ObservationType::ALL
        .get(usize::from(b))
        .copied()
        .ok_or(Corrupt("unknown observation kind"))
}

fn put_str16(buf: &mut Vec<u8>, s: &str, what: &'static str) -> Result<(), MemoryError> {
    let n = u16::try_from(s.len()).map_err(|_| MemoryError::TooLong(what))?;
    buf.extend_from_slice(&n.to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_str32(buf: &mut Vec<u8>, s: &str, what: &'static str) -> Result<(), MemoryError> {
    let n = u32::try_from(s.len()).map_err(|_| MemoryError::TooLong(what))?;
    buf.extend_from_slice(&n.to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
    Ok(())
}

pub fn encode_observation(o: &Observation, buf: &mut Vec<u8>) -> Result<(), MemoryError> {
    buf.clear();
    buf.push(VERSION);
    buf.extend_from_slice(&o.ts.to_be_bytes());
    buf.push(kind_byte(o.kind));
    buf.extend_from_slice(&o.confidence.to_be_bytes());
    put_str16(buf, &o.node, "observation node")?;
    put_str32(buf, &o.text, "observation text")?;
    let n = u16::try_from(o.related_sources.len())
        .map_err(|_| MemoryError::TooLong("related sources"))?;
    buf.extend_from_slice(&n.to_be_bytes());
    for s in &o.related_sources {
        put_str16(buf, s, "related source")?;
    }
    Ok(())
}

/// A reader over a stored value.
struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Corrupt> {
        let (a, b) = self
            .0
            .split_at_checked(n)
            .ok_or(Corrupt("short memory value"))?;
        self.0 = b;
        Ok(a)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], Corrupt> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }
    fn u8(&mut self) -> Result<u8, Corrupt> {
        Ok(self.arr::<1>()?[0])
    }
    fn str(&mut self, n: usize) -> Result<&'a str, Corrupt> {
        std::str::from_utf8(self.take(n)?).map_err(|_| Corrupt("memory text is not UTF-8"))
    }
    fn str16(&mut self) -> Result<&'a str, Corrupt> {
        let n = u16::from_be_bytes(self.arr()?);
        self.str(usize::from(n))
    }
    fn str32(&mut self) -> Result<&'a str, Corrupt> {
        let n = u32::from_be_bytes(self.arr()?);
        self.str(n as usize)
    }
}

/// The fixed fields and text of a stored observation, borrowed (no allocation).
pub struct ObservationRef<'a> {
    pub ts: Micros,
    pub kind: ObservationType,
    pub confidence: f32,
    pub node: &'a str,
    pub text: &'a str,
    rest: &'a [u8],
}

impl ObservationRef<'_> {
    pub fn to_owned(&self, id: u64) -> Result<Observation, Corrupt> {
        let mut c = Cur(self.rest);
        let n = u16::from_be_bytes(c.arr()?);
        let related_sources = (0..n)
            .map(|_| c.str16().map(str::to_owned))
            .collect::<Result<_, _>>()?;
        Ok(Observation {
            id,
            ts: self.ts,
            text: self.text.to_owned(),
            kind: self.kind,
            confidence: self.confidence,
            related_sources,
            node: self.node.to_owned(),
        })
    }
}

pub fn decode_observation_ref(v: &[u8]) -> Result<ObservationRef<'_>, Corrupt> {
    let mut c = Cur(v);
    if c.u8()? != VERSION {
        return Err(Corrupt("unknown observation version"));
    }
    let ts = i64::from_be_bytes(c.arr()?);
    let kind = kind_from_byte(c.u8()?)?;
    let confidence = f32::from_be_bytes(c.arr()?);
    let node = c.str16()?;
    let text = c.str32()?;
    Ok(ObservationRef {
        ts,
        kind,
        confidence,
        node,
        text,
        rest: c.0,
    })
}

pub fn decode_observation(id: u64, v: &[u8]) -> Result<Observation, Corrupt> {
    decode_observation_ref(v)?.to_owned(id)
}

pub fn encode_memory(m: &Memory, buf: &mut Vec<u8>) -> Result<(), MemoryError> {
    buf.clear();
    buf.push(VERSION);
    buf.push(u8::from(m.active));
    buf.extend_from_slice(&m.confidence.to_be_bytes());
    buf.extend_from_slice(&m.times_confirmed.to_be_bytes());
    buf.extend_from_slice(&m.first_seen.to_be_bytes());
    buf.extend_from_slice(&m.last_seen.to_be_bytes());
    put_str16(buf, &m.node, "memory node")?;
    put_str32(buf, &m.fact, "memory fact")?;
    Ok(())
}

/// Whether a stored memory is active, reading only its flags byte.
pub fn memory_is_active(v: &[u8]) -> Result<bool, Corrupt> {
    match v {
        [VERSION, flags, ..] => Ok(flags & 1 != 0),
        _ => Err(Corrupt("unknown memory version")),
    }
}

/// The fact of a stored memory, borrowed.
pub fn memory_fact(v: &[u8]) -> Result<&str, Corrupt> {
    let mut c = Cur(v.get(26..).ok_or(Corrupt("short memory value"))?);
    c.str16()?;
    c.str32()
}

pub fn decode_memory(id: u64, v: &[u8]) -> Result<Memory, Corrupt> {
    let mut c = Cur(v);
    if c.u8()? != VERSION {
        return Err(Corrupt("unknown memory version"));
    }
    let flags = c.u8()?;
    let confidence = f32::from_be_bytes(c.arr()?);
    let times_confirmed = u32::from_be_bytes(c.arr()?);
    let first_seen = i64::from_be_bytes(c.arr()?);
    let last_seen = i64::from_be_bytes(c.arr()?);
    let node = c.str16()?.to_owned();
    let fact = c.str32()?.to_owned();
    Ok(Memory {
        id,
        fact,
        confidence,
        times_confirmed,
        active: flags & 1 != 0,
        first_seen,
        last_seen,
        node,
    })
}

pub fn id_of(k: &[u8]) -> Result<u64, Corrupt> {
    Ok(u64::from_be_bytes(
        k.try_into().map_err(|_| Corrupt("memory key length"))?,
    ))
}

/// Put with `APPEND` when the key sorts after every key present (new ids do), so pages fill
/// up instead of splitting in half; an ordinary put otherwise.
fn put_appending(db: &Db, wtxn: &mut RwTxn, key: &[u8], value: &[u8]) -> Result<(), MemoryError> {
    match db.put_with_flags(wtxn, PutFlags::APPEND, key, value) {
        Err(heed::Error::Mdb(MdbError::KeyExist)) => Ok(db.put(wtxn, key, value)?),
        r => Ok(r?),
    }
}

/// An item another node sent, for `insert_remote` and `replace_remote`.
#[derive(Clone, Copy)]
pub(crate) enum Remote<'a> {
    Observation(&'a Observation),
    Memory(&'a Memory),
}

/// Observations, memories and vectors of a `Store`.
#[derive(Clone, Copy)]
pub struct MemoryStore<'a> {
    pub(crate) store: &'a Store,
}

impl<'a> MemoryStore<'a> {
    pub fn new(store: &'a Store) -> MemoryStore<'a> {
        MemoryStore { store }
    }

    pub(crate) fn read_txn(&self) -> Result<RoTxn<'a, heed::WithoutTls>, MemoryError> {
        Ok(self.store.env().read_txn()?)
    }

    pub(crate) fn observations_db(&self) -> &'a Db {
        &self.store.observations
    }

    pub(crate) fn memories_db(&self) -> &'a Db {
        &self.store.memories
    }

    pub(crate) fn vectors_db(&self) -> &'a Db {
        &self.store.vectors
    }

    fn meta_u64(&self, txn: &RoTxn, key: &[u8]) -> Result<Option<u64>, MemoryError> {
        match self.store.meta_db().get(txn, key)? {
            Some(v) => Ok(Some(u64::from_be_bytes(
                v.try_into().map_err(|_| Corrupt("memory meta length"))?,
            ))),
            None => Ok(None),
        }
    }

    /// The embedding dimension recorded by the first vector, if any.
    pub fn dimension(&self) -> Result<Option<usize>, MemoryError> {
        let rtxn = self.read_txn()?;
        self.dimension_in(&rtxn)
    }

    pub(crate) fn dimension_in(&self, txn: &RoTxn) -> Result<Option<usize>, MemoryError> {
        match self.store.meta_db().get(txn, META_DIM)? {
            Some(v) => Ok(Some(u32::from_be_bytes(
                v.try_into().map_err(|_| Corrupt("embedding dim length"))?,
            ) as usize)),
            None => Ok(None),
        }
    }

    /// Take the next id of a table (persisting the one after).
    fn next_id(&self, wtxn: &mut RwTxn, db: &Db, meta_key: &[u8]) -> Result<u64, MemoryError> {
        let stored = self.meta_u64(wtxn, meta_key)?.unwrap_or(FIRST_ID);
        let after_last = match db.last(wtxn)? {
            Some((k, _)) => id_of(k)?.saturating_add(1),
            None => FIRST_ID,
        };
        let id = stored.max(after_last);
        self.store
            .meta_db()
            .put(wtxn, meta_key, &(id + 1).to_be_bytes())?;
        Ok(id)
    }

    /// Quantise and put a vector, checking (or recording) the store's dimension.
    fn put_vector(
        &self,
        wtxn: &mut RwTxn,
        kind: VectorKind,
        id: u64,
        v: &[f32],
        buf: &mut Vec<u8>,
    ) -> Result<(), MemoryError> {
        match self.dimension_in(wtxn)? {
            Some(d) if d != v.len() => {
                return Err(MemoryError::Dimension {
                    got: v.len(),
                    expected: d,
                });
            }
            Some(_) => {}
            None => {
                let d = u32::try_from(v.len()).map_err(|_| MemoryError::TooLong("vector"))?;
                self.store.meta_db().put(wtxn, META_DIM, &d.to_be_bytes())?;
            }
        }
        vectors::quantise_into(v, buf)?;
        put_appending(self.vectors_db(), wtxn, &vector_key(kind, id), buf)
    }

    /// Store an observation (its `id` is ignored) with its embedding, if any. Returns the
    /// new id. A vector of the wrong dimension refuses the whole write.
    pub fn add_observation(
        &self,
        obs: &Observation,
        vector: Option<&[f32]>,
    ) -> Result<u64, MemoryError> {
        Ok(self.add_observations(&[(obs, vector)])?[0])
    }

    /// Many observations in one transaction (imports, benches). All or nothing.
    pub fn add_observations(
        &self,
        items: &[(&Observation, Option<&[f32]>)],
    ) -> Result<Vec<u64>, MemoryError> {
        let mut wtxn = self.store.env().write_txn()?;
        let mut buf = Vec::new();
        let mut ids = Vec::with_capacity(items.len());
        for (obs, vector) in items {
            let id = self.next_id(&mut wtxn, self.observations_db(), META_NEXT_OBS)?;
            encode_observation(obs, &mut buf)?;
            put_appending(self.observations_db(), &mut wtxn, &id.to_be_bytes(), &buf)?;
            if let Some(v) = vector {
                self.put_vector(&mut wtxn, VectorKind::Observation, id, v, &mut buf)?;
            }
            self.log_observation(&mut wtxn, replica::OBSERVATION, id, obs, &[])?;
            ids.push(id);
        }
        self.store.commit(wtxn)?;
        Ok(ids)
    }

    /// Observations and memories (ids ignored), without vectors, in one transaction: an
    /// import is all or nothing. Returns how many of each were stored.
    pub fn add_all(
        &self,
        observations: &[Observation],
        memories: &[Memory],
    ) -> Result<(u64, u64), MemoryError> {
        let mut wtxn = self.store.env().write_txn()?;
        let mut buf = Vec::new();
        for o in observations {
            let id = self.next_id(&mut wtxn, self.observations_db(), META_NEXT_OBS)?;
            encode_observation(o, &mut buf)?;
            put_appending(self.observations_db(), &mut wtxn, &id.to_be_bytes(), &buf)?;
            self.log_observation(&mut wtxn, replica::OBSERVATION, id, o, &[])?;
        }
        for m in memories {
            let id = self.next_id(&mut wtxn, self.memories_db(), META_NEXT_MEM)?;
            encode_memory(m, &mut buf)?;
            put_appending(self.memories_db(), &mut wtxn, &id.to_be_bytes(), &buf)?;
            self.log_memory(&mut wtxn, replica::MEMORY, id, m)?;
        }
        self.store.commit(wtxn)?;
        Ok((observations.len() as u64, memories.len() as u64))
    }

    /// Store a memory (its `id` is ignored) with its embedding, if any. Returns the new id.
    pub fn add_memory(&self, mem: &Memory, vector: Option<&[f32]>) -> Result<u64, MemoryError> {
        let mut wtxn = self.store.env().write_txn()?;
        let mut buf = Vec::new();
        let id = self.next_id(&mut wtxn, self.memories_db(), META_NEXT_MEM)?;
        encode_memory(mem, &mut buf)?;
        put_appending(self.memories_db(), &mut wtxn, &id.to_be_bytes(), &buf)?;
        if let Some(v) = vector {
            self.put_vector(&mut wtxn, VectorKind::Memory, id, v, &mut buf)?;
        }
        self.log_memory(&mut wtxn, replica::MEMORY, id, mem)?;
        self.store.commit(wtxn)?;
        Ok(id)
    }

    /// Set (or replace) the vector of an existing observation or memory (re-embedding).
    /// False if there is no such item.
    pub fn set_vector(&self, kind: VectorKind, id: u64, v: &[f32]) -> Result<bool, MemoryError> {
        let mut wtxn = self.store.env().write_txn()?;
        let db = match kind {
            VectorKind::Observation => self.observations_db(),
            VectorKind::Memory => self.memories_db(),
        };
        if db.get(&wtxn, &id.to_be_bytes())?.is_none() {
            return Ok(false);
        }
        self.put_vector(&mut wtxn, kind, id, v, &mut Vec::new())?;
        self.store.commit(wtxn)?;
        Ok(true)
    }

    /// Delete every vector and forget the dimension (the embedding model changed); then
    /// `vectors_missing` lists everything to re-embed. Returns how many were deleted.
    pub fn clear_vectors(&self) -> Result<u64, MemoryError> {
        let mut wtxn = self.store.env().write_txn()?;
        let n = self.vectors_db().len(&wtxn)?;
        self.vectors_db().clear(&mut wtxn)?;
        self.store.meta_db().delete(&mut wtxn, META_DIM)?;
        self.store.commit(wtxn)?;
        Ok(n)
    }

    pub fn get_observation(&self, id: u64) -> Result<Option<Observation>, MemoryError> {
        let rtxn = self.read_txn()?;
        match self.observations_db().get(&rtxn, &id.to_be_bytes())? {
            Some(v) => Ok(Some(decode_observation(id, v)?)),
            None => Ok(None),
        }
    }

    pub fn get_memory(&self, id: u64) -> Result<Option<Memory>, MemoryError> {
        let rtxn = self.read_txn()?;
        match self.memories_db().get(&rtxn, &id.to_be_bytes())? {
            Some(v) => Ok(Some(decode_memory(id, v)?)),
            None => Ok(None),
        }
    }

    /// Observations at or after `from_ts`, of `kind` if given, newest first, at most
    /// `limit`, of every node (`observations_of` picks one).
    pub fn observations(
        &self,
        from_ts: Micros,
        kind: Option<ObservationType>,
        limit: usize,
    ) -> Result<Vec<Observation>, MemoryError> {
        self.observations_of(None, from_ts, kind, limit)
    }

    /// Memories, newest id first, at most `limit`; only active ones if `active_only`.
    pub fn memories(&self, active_only: bool, limit: usize) -> Result<Vec<Memory>, MemoryError> {
        let rtxn = self.read_txn()?;
        let mut out = Vec::new();
        for kv in self.memories_db().rev_iter(&rtxn)? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = kv?;
            if !active_only || memory_is_active(v)? {
                out.push(decode_memory(id_of(k)?, v)?);
            }
        }
        Ok(out)
    }

    /// Change a stored memory in one transaction; false if there is none.
    /// Logged as `event` (sync on).
    fn update_memory(
        &self,
        id: u64,
        event: &str,
        f: impl FnOnce(&mut Memory),
    ) -> Result<bool, MemoryError> {
        let mut wtxn = self.store.env().write_txn()?;
        let key = id.to_be_bytes();
        let Some(v) = self.memories_db().get(&wtxn, &key)? else {
            return Ok(false);
        };
        let mut m = decode_memory(id, v)?;
        f(&mut m);
        let mut buf = Vec::new();
        encode_memory(&m, &mut buf)?;
        self.memories_db().put(&mut wtxn, &key, &buf)?;
        self.log_memory(&mut wtxn, event, id, &m)?;
        self.store.commit(wtxn)?;
        Ok(true)
    }

    /// Mark a memory inactive (kept, no longer recalled). False if there is no such memory.
    pub fn deactivate_memory(&self, id: u64) -> Result<bool, MemoryError> {
        self.update_memory(id, replica::MEMORY_DEACTIVATED, |m| m.active = false)
    }

    /// Seen again: times_confirmed + 1, confidence + `step` (capped at 1.0), last_seen =
    /// now. False if there is no such memory.
    pub fn reinforce_memory(&self, id: u64, confidence_step: f32) -> Result<bool, MemoryError> {
        let now = crate::clock::now_us();
        self.update_memory(id, replica::MEMORY_REINFORCED, |m| {
            m.times_confirmed = m.times_confirmed.saturating_add(1);
            m.confidence = (m.confidence + confidence_step).clamp(0.0, 1.0);
            m.last_seen = now.max(m.last_seen);
        })
    }

    /// Log a new or changed observation `id` (sync on), under its ref (a new one the
    /// first time), and record the ref's version.
    fn log_observation(
        &self,
        wtxn: &mut RwTxn,
        event: &str,
        id: u64,
        o: &Observation,
        replaces: &[String],
    ) -> Result<(), MemoryError> {
        let Some(node) = self.store.sync_node() else {
            return Ok(());
        };
        let r = match self.store.sync_local_ref(wtxn, 0, id)? {
            Some(r) => r,
            None => sync_log::new_id(node, id),
        };
        let mut p = replica::observation_payload(&r, o);
        if !replaces.is_empty() {
            p["replaces"] = serde_json::json!(replaces);
        }
        // A repeat joins into the stored state (later time, higher confidence, more
        // sources), so the new entry holds all the one before held; a summary's entry
        // (it names what it replaced) is never the one dropped.
        if event == replica::OBSERVATION
            && let Some(prev) = self.store.sync_ref(wtxn, &r)?
            && prev.kind == VectorKind::Observation as u8
        {
            self.store
                .sync_supersede(wtxn, &r, &prev, &[replica::OBSERVATION])?;
        }
        let e = self.store.sync_append(wtxn, node, event, p)?;
        let state = RefState {
            kind: VectorKind::Observation as u8,
            local_id: id,
            lamport: e.lamport_ts,
            node: node.to_string(),
        };
        Ok(self.store.sync_put_ref(wtxn, &r, &state)?)
    }

    /// Log a new or changed memory `id` (sync on), as `log_observation`.
    fn log_memory(
        &self,
        wtxn: &mut RwTxn,
        event: &str,
        id: u64,
        m: &Memory,
    ) -> Result<(), MemoryError> {
        let Some(node) = self.store.sync_node() else {
            return Ok(());
        };
        let r = match self.store.sync_local_ref(wtxn, 1, id)? {
            Some(r) => r,
            None => sync_log::new_id(node, id),
        };
        // A reinforcement a round would otherwise leave every earlier state in the log.
        if let Some(prev) = self.store.sync_ref(wtxn, &r)?
            && prev.kind == VectorKind::Memory as u8
        {
            self.store
                .sync_supersede(wtxn, &r, &prev, replica::MEMORY_EVENTS)?;
        }
        let e = self
            .store
            .sync_append(wtxn, node, event, replica::memory_payload(&r, m))?;
        let state = RefState {
            kind: VectorKind::Memory as u8,
            local_id: id,
            lamport: e.lamport_ts,
            node: node.to_string(),
        };
        Ok(self.store.sync_put_ref(wtxn, &r, &state)?)
    }

    /// Log every observation and memory that has no ref yet (stored before sync was on,
    /// or by an earlier version), `chunk` per transaction, so what a node knew before
    /// joining is shared too. Returns how many were logged. Nothing without a sync node.
    pub fn log_unlogged(&self, chunk: usize) -> Result<u64, MemoryError> {
        if self.store.sync_node().is_none() {
            return Ok(0);
        }
        let mut n = 0;
        for kind in [VectorKind::Observation, VectorKind::Memory] {
            let db = match kind {
                VectorKind::Observation => self.observations_db(),
                VectorKind::Memory => self.memories_db(),
            };
            let ids: Vec<u64> = {
                let rtxn = self.read_txn()?;
                let mut ids = Vec::new();
                for kv in db.iter(&rtxn)? {
                    let id = id_of(kv?.0)?;
                    if self.store.sync_local_ref(&rtxn, kind as u8, id)?.is_none() {
                        ids.push(id);
                    }
                }
                ids
            };
            for part in ids.chunks(chunk.max(1)) {
                let mut wtxn = self.store.env().write_txn()?;
                for &id in part {
                    let Some(v) = db.get(&wtxn, &id.to_be_bytes())? else {
                        continue;
                    };
                    match kind {
                        VectorKind::Observation => {
                            let o = decode_observation(id, v)?;
                            self.log_observation(&mut wtxn, replica::OBSERVATION, id, &o, &[])?;
                        }
                        VectorKind::Memory => {
                            let m = decode_memory(id, v)?;
                            self.log_memory(&mut wtxn, replica::MEMORY, id, &m)?;
                        }
                    }
                    n += 1;
                }
                self.store.commit(wtxn)?;
            }
        }
        Ok(n)
    }

    /// Mark ref `r` replaced: a late entry for it never brings it back.
    pub(crate) fn tombstone(&self, wtxn: &mut RwTxn, r: &str) -> Result<(), MemoryError> {
        let state = RefState {
            kind: TOMBSTONE,
            local_id: 0,
            lamport: u64::MAX,
            node: String::new(),
        };
        Ok(self.store.sync_put_ref(wtxn, r, &state)?)
    }

    /// A remote observation or memory stored in the caller's transaction (applying a
    /// log entry): a new id, no vector (the re-embedding job adds it), nothing logged
    /// (the entry is in the log already). Returns the id.
    pub(crate) fn insert_remote(
        &self,
        wtxn: &mut RwTxn,
        item: Remote<'_>,
    ) -> Result<u64, MemoryError> {
        let mut buf = Vec::new();
        match item {
            Remote::Observation(o) => {
                let id = self.next_id(wtxn, self.observations_db(), META_NEXT_OBS)?;
                encode_observation(o, &mut buf)?;
                put_appending(self.observations_db(), wtxn, &id.to_be_bytes(), &buf)?;
                Ok(id)
            }
            Remote::Memory(m) => {
                let id = self.next_id(wtxn, self.memories_db(), META_NEXT_MEM)?;
                encode_memory(m, &mut buf)?;
                put_appending(self.memories_db(), wtxn, &id.to_be_bytes(), &buf)?;
                Ok(id)
            }
        }
    }

    /// Overwrite stored item `id` in the caller's transaction (its vector stays when the
    /// text did not change, and goes when it did). False if it is gone.
    pub(crate) fn replace_remote(
        &self,
        wtxn: &mut RwTxn,
        id: u64,
        item: Remote<'_>,
    ) -> Result<bool, MemoryError> {
        let key = id.to_be_bytes();
        let mut buf = Vec::new();
        let (db, kind, same_text) = match item {
            Remote::Observation(o) => {
                let Some(v) = self.observations_db().get(wtxn, &key)? else {
                    return Ok(false);
                };
                let same = decode_observation_ref(v)?.text == o.text;
                encode_observation(o, &mut buf)?;
                (self.observations_db(), VectorKind::Observation, same)
            }
            Remote::Memory(m) => {
                let Some(v) = self.memories_db().get(wtxn, &key)? else {
                    return Ok(false);
                };
                let same = memory_fact(v)? == m.fact;
                encode_memory(m, &mut buf)?;
                (self.memories_db(), VectorKind::Memory, same)
            }
        };
        db.put(wtxn, &key, &buf)?;
        if !same_text {
            self.vectors_db().delete(wtxn, &vector_key(kind, id))?;
        }
        Ok(true)
    }

    /// Delete observation `id` and its vector in the caller's transaction.
    pub(crate) fn delete_remote(&self, wtxn: &mut RwTxn, id: u64) -> Result<(), MemoryError> {
        self.observations_db().delete(wtxn, &id.to_be_bytes())?;
        self.vectors_db()
            .delete(wtxn, &vector_key(VectorKind::Observation, id))?;
        Ok(())
    }

    /// The embedding model recorded with the vectors, if any.
    pub fn embedding_model(&self) -> Result<Option<String>, MemoryError> {
        let rtxn = self.read_txn()?;
        Ok(self
            .store
            .meta_db()
            .get(&rtxn, META_MODEL)?
            .map(|v| String::from_utf8_lossy(v).into_owned()))
    }

    /// Record the embedding model. If another one was recorded, every vector is deleted
    /// in the same transaction (its dimension forgotten): they cannot be compared with
    /// the new model's. Returns how many vectors were deleted.
    pub fn set_embedding_model(&self, model: &str) -> Result<u64, MemoryError> {
        // The usual case, without taking the write lock from the store's writer.
        if self.embedding_model()?.as_deref() == Some(model) {
            return Ok(0);
        }
        let mut wtxn = self.store.env().write_txn()?;
        let old = self.store.meta_db().get(&wtxn, META_MODEL)?;
        if old == Some(model.as_bytes()) {
            return Ok(0);
        }
        let mut n = 0;
        if old.is_some() {
            n = self.vectors_db().len(&wtxn)?;
            self.vectors_db().clear(&mut wtxn)?;
            self.store.meta_db().delete(&mut wtxn, META_DIM)?;
        }
        self.store
            .meta_db()
            .put(&mut wtxn, META_MODEL, model.as_bytes())?;
        self.store.commit(wtxn)?;
        Ok(n)
    }

    /// Whether a vector from `model` may be compared with (and stored beside) the stored
    /// ones: yes if they are `model`'s, or none is recorded yet (then `model` is recorded);
    /// no while they are another model's, until re-embedding ([`super::reembed`]).
    pub fn vectors_match(&self, model: &str) -> Result<bool, MemoryError> {
        match self.embedding_model()? {
            Some(m) => Ok(m == model),
            None => {
                self.set_embedding_model(model)?;
                Ok(true)
            }
        }
    }

    /// Set many vectors in one transaction (re-embedding). Items deleted meanwhile are
    /// skipped. Returns how many were set. A vector of the wrong dimension refuses all.
    pub fn set_vectors(&self, items: &[(VectorKind, u64, &[f32])]) -> Result<u64, MemoryError> {
        let mut wtxn = self.store.env().write_txn()?;
        let mut buf = Vec::new();
        let mut n = 0;
        for &(kind, id, v) in items {
            let db = match kind {
                VectorKind::Observation => self.observations_db(),
                VectorKind::Memory => self.memories_db(),
            };
            if db.get(&wtxn, &id.to_be_bytes())?.is_some() {
                self.put_vector(&mut wtxn, kind, id, v, &mut buf)?;
                n += 1;
            }
        }
        self.store.commit(wtxn)?;
        Ok(n)
    }

    /// Merge a repeated observation into stored one `id`: its time becomes `ts` (if
    /// later), its confidence the higher of both, its related sources the union. False
    /// if there is no such observation.
    pub fn merge_observation(
        &self,
        id: u64,
        ts: Micros,
        confidence: f32,
        related_sources: &[String],
    ) -> Result<bool, MemoryError> {
        let mut wtxn = self.store.env().write_txn()?;
        let key = id.to_be_bytes();
        let Some(v) = self.observations_db().get(&wtxn, &key)? else {
            return Ok(false);
        };
        let mut o = decode_observation(id, v)?;
        let seen = Observation {
            ts,
            confidence,
            related_sources: related_sources.to_vec(),
            ..o.clone()
        };
        replica::join_observation(&mut o, &seen);
        let mut buf = Vec::new();
        encode_observation(&o, &mut buf)?;
        self.observations_db().put(&mut wtxn, &key, &buf)?;
        self.log_observation(&mut wtxn, replica::OBSERVATION, id, &o, &[])?;
        self.store.commit(wtxn)?;
        Ok(true)
    }

    /// The `limit` oldest observations (by id, which follows time), summaries skipped.
    pub fn oldest_observations(&self, limit: usize) -> Result<Vec<Observation>, MemoryError> {
        let rtxn = self.read_txn()?;
        let mut out = Vec::new();
        for kv in self.observations_db().iter(&rtxn)? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = kv?;
            let r = decode_observation_ref(v)?;
            if r.kind != ObservationType::Summary {
                out.push(r.to_owned(id_of(k)?)?);
            }
        }
        Ok(out)
    }

    /// Compaction's write: store `summary` (with its vector) and delete `originals` with
    /// theirs, in one transaction, so a crash leaves either all originals or the summary.
    /// Returns the summary's id.
    pub fn replace_with_summary(
        &self,
        originals: &[u64],
        summary: &Observation,
        vector: Option<&[f32]>,
    ) -> Result<u64, MemoryError> {
        let mut wtxn = self.store.env().write_txn()?;
        let mut replaces = Vec::new();
        for &id in originals {
            self.observations_db()
                .delete(&mut wtxn, &id.to_be_bytes())?;
            self.vectors_db()
                .delete(&mut wtxn, &vector_key(VectorKind::Observation, id))?;
            if let Some(r) = self.store.sync_local_ref(&wtxn, 0, id)? {
                self.tombstone(&mut wtxn, &r)?;
                replaces.push(r);
            }
        }
        let mut buf = Vec::new();
        let id = self.next_id(&mut wtxn, self.observations_db(), META_NEXT_OBS)?;
        encode_observation(summary, &mut buf)?;
        put_appending(self.observations_db(), &mut wtxn, &id.to_be_bytes(), &buf)?;
        if let Some(v) = vector {
            self.put_vector(&mut wtxn, VectorKind::Observation, id, v, &mut buf)?;
        }
        let event = replica::OBSERVATION_SUMMARY;
        self.log_observation(&mut wtxn, event, id, summary, &replaces)?;
        self.store.commit(wtxn)?;
        Ok(id)
    }

    /// Delete observations (and their vectors); returns how many existed.
    pub fn delete_observations(&self, ids: &[u64]) -> Result<u64, MemoryError> {
        let mut wtxn = self.store.env().write_txn()?;
        let mut n = 0;
        for &id in ids {
            if self
                .observations_db()
                .delete(&mut wtxn, &id.to_be_bytes())?
            {
                n += 1;
            }
            self.vectors_db()
                .delete(&mut wtxn, &vector_key(VectorKind::Observation, id))?;
        }
        self.store.commit(wtxn)?;
        Ok(n)
    }

    /// Delete at most `max` observations older than `older_than` (oldest ids first), with
    /// their vectors; summaries stay if `keep_summaries`. Returns how many were deleted.
    pub fn age_off_observations(
        &self,
        older_than: Micros,
        keep_summaries: bool,
        max: u64,
    ) -> Result<u64, MemoryError> {
        let mut wtxn = self.store.env().write_txn()?;
        let mut doomed = Vec::new();
        for kv in self.observations_db().iter(&wtxn)? {
            if doomed.len() as u64 >= max {
                break;
            }
            let (k, v) = kv?;
            let r = decode_observation_ref(v)?;
            if r.ts < older_than && !(keep_summaries && r.kind == ObservationType::Summary) {
                doomed.push(id_of(k)?);
            }
        }
        for &id in &doomed {
            self.observations_db()
                .delete(&mut wtxn, &id.to_be_bytes())?;
            self.vectors_db()
                .delete(&mut wtxn, &vector_key(VectorKind::Observation, id))?;
        }
        self.store.commit(wtxn)?;
        Ok(doomed.len() as u64)
    }

    pub fn memory_counts(&self) -> Result<MemoryCounts, MemoryError> {
        let rtxn = self.read_txn()?;
        let mut c = MemoryCounts::default();
        for kv in self.observations_db().iter(&rtxn)? {
            let (_, v) = kv?;
            let kind = *v.get(9).ok_or(Corrupt("short observation"))?;
            let slot = c
                .observations_by_type
                .get_mut(usize::from(kind))
                .ok_or(Corrupt("unknown observation kind"))?;
            *slot += 1;
            c.observations += 1;
        }
        for kv in self.memories_db().iter(&rtxn)? {
            let (_, v) = kv?;
            if memory_is_active(v)? {
                c.memories_active += 1;
            } else {
                c.memories_inactive += 1;
            }
        }
        c.vectors = self.vectors_db().len(&rtxn)?;
        c.dimension = self.dimension_in(&rtxn)?.map(|d| d as u32);
        Ok(c)
    }

    /// Observations and active memories without a vector, oldest first.
    pub fn vectors_missing(&self) -> Result<MissingVectors, MemoryError> {
        let rtxn = self.read_txn()?;
        let mut out = MissingVectors::default();
        let has = |kind, id| -> Result<bool, MemoryError> {
            Ok(self
                .vectors_db()
                .get(&rtxn, &vector_key(kind, id))?
                .is_some())
        };
        for kv in self.observations_db().iter(&rtxn)? {
            let id = id_of(kv?.0)?;
            if !has(VectorKind::Observation, id)? {
                out.observations.push(id);
            }
        }
        for kv in self.memories_db().iter(&rtxn)? {
            let (k, v) = kv?;
            let id = id_of(k)?;
            if memory_is_active(v)? && !has(VectorKind::Memory, id)? {
                out.memories.push(id);
            }
        }
        Ok(out)
    }

    /// Visit every stored vector of `kind` in id order, borrowed from the read transaction.
    pub(crate) fn for_each_vector(
        &self,
        txn: &RoTxn,
        kind: VectorKind,
        f: impl FnMut(u64, &[u8]) -> Result<(), MemoryError>,
    ) -> Result<(), MemoryError> {
        self.for_each_vector_in(txn, kind, 0, None, f)
    }

    /// The lowest and highest id with a vector of `kind`.
    pub(crate) fn vector_id_bounds(
        &self,
        txn: &RoTxn,
        kind: VectorKind,
    ) -> Result<Option<(u64, u64)>, MemoryError> {
        let lo = vector_key(kind, 0);
        let first = match self.vectors_db().get_greater_than_or_equal_to(txn, &lo)? {
            Some((k, _)) => match vector_key_id(kind, k) {
                Some(id) => id,
                None => return Ok(None),
            },
            None => return Ok(None),
        };
        let hi = vector_key(kind, u64::MAX);
        let last = match self.vectors_db().get_lower_than_or_equal_to(txn, &hi)? {
            Some((k, _)) => vector_key_id(kind, k).ok_or(Corrupt("vector key"))?,
            None => return Ok(None),
        };
        Ok(Some((first, last)))
    }

    /// Visit the vectors of `kind` with `from_id <= id < to_id` (None: to the end).
    pub(crate) fn for_each_vector_in(
        &self,
        txn: &RoTxn,
        kind: VectorKind,
        from_id: u64,
        to_id: Option<u64>,
        mut f: impl FnMut(u64, &[u8]) -> Result<(), MemoryError>,
    ) -> Result<(), MemoryError> {
        let lo = vector_key(kind, from_id);
        let hi = match to_id {
            Some(id) => vector_key(kind, id),
            None => {
                let mut k = [0u8; 9];
                k[0] = kind as u8 + 1;
                k
            }
        };
        let range = (
            Bound::Included(lo.as_slice()),
            Bound::Excluded(hi.as_slice()),
        );
        for kv in self.vectors_db().range(txn, &range)? {
            let (k, v) = kv?;
            let id = vector_key_id(kind, k).ok_or(Corrupt("vector key"))?;
            f(id, v)?;
        }
        Ok(())
    }
}

impl Store {
    /// The memory tables of this store.
    pub fn memory(&self) -> MemoryStore<'_> {
        MemoryStore::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;
    use crate::store::tests::TempDir;

    fn opts() -> StoreOptions {
        StoreOptions { map_size: 16 << 20 }
    }

    pub(crate) fn obs(ts: Micros, kind: ObservationType, text: &str) -> Observation {
        Observation {
            id: 0,
            ts,
            text: text.into(),
            kind,
            confidence: 0.75,
            related_sources: vec!["system:cpu_temp".into(), "gpio:17".into()],
            node: "pi-kitchen".into(),
        }
    }

    pub(crate) fn mem(fact: &str) -> Memory {
        Memory {
            id: 0,
            fact: fact.into(),
            confidence: 0.5,
            times_confirmed: 1,
            active: true,
            first_seen: 100,
            last_seen: 200,
            node: "pi-kitchen".into(),
        }
    }

    #[test]
    fn observations_and_memories_round_trip_every_field() {
        let dir = TempDir::new("mem-rt");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let ms = store.memory();
        for (i, kind) in ObservationType::ALL.into_iter().enumerate() {
            let mut o = obs(-5 + i as i64, kind, "CPU temp rose — ünïcode ✓");
            o.confidence = 0.125 * i as f32;
            if i == 2 {
                o.related_sources.clear();
                o.node.clear();
                o.text.clear();
            }
            let id = ms.add_observation(&o, None).unwrap();
            o.id = id;
            assert_eq!(ms.get_observation(id).unwrap(), Some(o));
        }
        assert_eq!(ms.get_observation(999).unwrap(), None);
        let mut m = mem("the fridge compressor cycles every 40 minutes");
        m.confidence = 0.33;
        m.times_confirmed = 7;
        m.first_seen = -1;
        m.last_seen = i64::MAX;
        let id = ms.add_memory(&m, None).unwrap();
        m.id = id;
        assert_eq!(ms.get_memory(id).unwrap(), Some(m.clone()));
        assert_eq!(ms.memories(false, 10).unwrap(), vec![m]);
        // Too long for its length prefix: refused, nothing stored.
        let mut long = obs(0, ObservationType::General, "x");
        long.node = "n".repeat(70_000);
        assert!(matches!(
            ms.add_observation(&long, None),
            Err(MemoryError::TooLong(_))
        ));
        assert_eq!(ms.memory_counts().unwrap().observations, 5);
    }

    #[test]
    fn ids_are_monotonic_across_deletes_and_reopen() {
        let dir = TempDir::new("mem-ids");
        let last;
        {
            let store = Store::open(&dir.0, &opts()).unwrap();
            let ms = store.memory();
            let a = ms
                .add_observation(&obs(1, ObservationType::Status, "a"), None)
                .unwrap();
            let b = ms
                .add_observation(&obs(2, ObservationType::Status, "b"), None)
                .unwrap();
            assert_eq!((a, b), (FIRST_ID, FIRST_ID + 1));
            assert_eq!(ms.delete_observations(&[b, 77]).unwrap(), 1);
            let c = ms
                .add_observation(&obs(3, ObservationType::Status, "c"), None)
                .unwrap();
            assert_eq!(c, b + 1, "ids are never reused");
            last = c;
            assert_eq!(ms.add_memory(&mem("m"), None).unwrap(), FIRST_ID);
        }
        let store = Store::open(&dir.0, &opts()).unwrap();
        let ms = store.memory();
        let d = ms
            .add_observation(&obs(4, ObservationType::Status, "d"), None)
            .unwrap();
        assert_eq!(d, last + 1);
        assert_eq!(ms.add_memory(&mem("n"), None).unwrap(), FIRST_ID + 1);
        let ids = ms
            .add_observations(&[
                (&obs(5, ObservationType::Status, "e"), None),
                (&obs(6, ObservationType::Status, "f"), None),
            ])
            .unwrap();
        assert_eq!(ids, vec![d + 1, d + 2]);
    }

    #[test]
    fn a_vector_of_another_dimension_is_refused() {
        let dir = TempDir::new("mem-dim");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let ms = store.memory();
        assert_eq!(ms.dimension().unwrap(), None);
        let v384 = vec![0.5f32; 384];
        let v768 = vec![0.5f32; 768];
        ms.add_observation(&obs(1, ObservationType::General, "a"), Some(&v384))
            .unwrap();
        assert_eq!(ms.dimension().unwrap(), Some(384));
        let err = ms
            .add_observation(&obs(2, ObservationType::General, "b"), Some(&v768))
            .unwrap_err();
        assert!(
            matches!(
                err,
                MemoryError::Dimension {
                    got: 768,
                    expected: 384
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("embedding dimension 768 does not match the store's 384"),
            "{msg}"
        );
        assert!(ms.add_memory(&mem("m"), Some(&v768)).is_err());
        // Nothing of the refused writes was stored.
        let c = ms.memory_counts().unwrap();
        assert_eq!(
            (c.observations, c.memories_active, c.vectors),
            (1, 0, 1),
            "{c:?}"
        );
        // Zero and NaN vectors are refused too.
        assert!(matches!(
            ms.add_observation(&obs(3, ObservationType::General, "z"), Some(&[0.0; 384])),
            Err(MemoryError::Vector(VectorError::Zero))
        ));
        // A model change: clear, then everything is missing and any dimension is accepted.
        assert_eq!(ms.clear_vectors().unwrap(), 1);
        assert_eq!(ms.vectors_missing().unwrap().observations, vec![1]);
        assert!(ms.set_vector(VectorKind::Observation, 1, &v768).unwrap());
        assert!(!ms.set_vector(VectorKind::Observation, 99, &v768).unwrap());
        assert_eq!(ms.dimension().unwrap(), Some(768));
        assert_eq!(ms.memory_counts().unwrap().dimension, Some(768));
    }

    #[test]
    fn age_off_keeps_summaries_when_asked_and_removes_vectors() {
        let dir = TempDir::new("mem-age");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let ms = store.memory();
        let v = vec![1.0f32; 8];
        for t in 0..10 {
            let kind = if t % 3 == 0 {
                ObservationType::Summary
            } else {
                ObservationType::Pattern
            };
            ms.add_observation(&obs(t * 100, kind, "x"), Some(&v))
                .unwrap();
        }
        // Older than 500: ts 0..400 -> 5 rows, 2 of them summaries (0, 300).
        assert_eq!(ms.age_off_observations(500, true, 2).unwrap(), 2);
        assert_eq!(ms.age_off_observations(500, true, 100).unwrap(), 1);
        assert_eq!(ms.age_off_observations(500, true, 100).unwrap(), 0);
        let c = ms.memory_counts().unwrap();
        assert_eq!((c.observations, c.vectors), (7, 7), "{c:?}");
        assert_eq!(c.observations_by_type[3], 4);
        let left: Vec<Micros> = ms
            .observations(Micros::MIN, None, 100)
            .unwrap()
            .iter()
            .map(|o| o.ts)
            .collect();
        assert_eq!(left, vec![900, 800, 700, 600, 500, 300, 0]);
        assert_eq!(ms.age_off_observations(500, false, 100).unwrap(), 2);
        let c = ms.memory_counts().unwrap();
        assert_eq!((c.observations, c.vectors), (5, 5), "{c:?}");
        assert!(ms.vectors_missing().unwrap().observations.is_empty());
    }

    #[test]
    fn observations_filter_by_time_and_kind_newest_first() {
        let dir = TempDir::new("mem-list");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let ms = store.memory();
        for t in 0..6 {
            let kind = if t % 2 == 0 {
                ObservationType::Anomaly
            } else {
                ObservationType::Status
            };
            ms.add_observation(&obs(t, kind, "x"), None).unwrap();
        }
        let ts = |v: Vec<Observation>| v.iter().map(|o| o.ts).collect::<Vec<_>>();
        assert_eq!(ts(ms.observations(2, None, 10).unwrap()), vec![5, 4, 3, 2]);
        assert_eq!(
            ts(ms
                .observations(0, Some(ObservationType::Anomaly), 10)
                .unwrap()),
            vec![4, 2, 0]
        );
        assert_eq!(ts(ms.observations(0, None, 2).unwrap()), vec![5, 4]);
        assert!(ms.observations(0, None, 0).unwrap().is_empty());
    }

    #[test]
    fn deactivate_and_reinforce() {
        let dir = TempDir::new("mem-reinf");
        let store = Store::open(&dir.0, &opts()).unwrap();
        let ms = store.memory();
        let a = ms.add_memory(&mem("a"), None).unwrap();
        let b = ms.add_memory(&mem("b"), Some(&[1.0, 0.0])).unwrap();
        assert!(ms.deactivate_memory(a).unwrap());
        assert!(!ms.deactivate_memory(42).unwrap());
        assert_eq!(
            ms.memories(true, 10)
                .unwrap()
                .iter()
                .map(|m| m.id)
                .collect::<Vec<_>>(),
            vec![b]
        );
        assert_eq!(ms.memories(false, 10).unwrap().len(), 2);
        assert_eq!(ms.memories(false, 1).unwrap()[0].id, b);
        let c = ms.memory_counts().unwrap();
        assert_eq!((c.memories_active, c.memories_inactive), (1, 1));
        // Only active memories without a vector are missing.
        assert!(ms.vectors_missing().unwrap().memories.is_empty());

        let before = crate::clock::now_us();
        assert!(ms.reinforce_memory(b, 0.3).unwrap());
        let m = ms.get_memory(b).unwrap().unwrap();
        assert_eq!(m.times_confirmed, 2);
        assert!((m.confidence - 0.8).abs() < 1e-6, "{}", m.confidence);
        assert!(m.last_seen >= before);
        assert_eq!(m.first_seen, 100);
        assert!(ms.reinforce_memory(b, 0.3).unwrap());
        let m = ms.get_memory(b).unwrap().unwrap();
        assert_eq!((m.times_confirmed, m.confidence), (3, 1.0));
        assert!(!ms.reinforce_memory(42, 0.1).unwrap());
    }
}
