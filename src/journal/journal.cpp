#include "journal/journal.hpp"

#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "core/crash_point.hpp"
#include "flightlog/error.hpp"
#include "format/record.hpp"

namespace flightlog::detail {

namespace {

constexpr const char* kSetNames[kRecordSets] = {"critical", "high", "normal", "low", "failed"};
constexpr const char* kMetaName = "meta";
constexpr std::size_t kCleanupDeletesPerTxn = 10'000;
// How far ahead sequences are reserved in the modes that do not flush every commit (see
// Journal::reserve_seqs): one forced device flush per this many records, and at most
// this many numbers skipped after a crash.
constexpr std::uint64_t kSeqReservation = std::uint64_t{1} << 20;

std::string quoted(const std::filesystem::path& p) {
  return "'" + p.string() + "'";
}

void be64(std::uint64_t v, unsigned char out[8]) noexcept {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<unsigned char>(v & 0xFF);
    v >>= 8;
  }
}

std::uint64_t from_be64(const void* p) noexcept {
  const auto* b = static_cast<const unsigned char*>(p);
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | b[i];
  return v;
}

MDB_val val_of(const void* data, std::size_t size) {
  return MDB_val{size, const_cast<void*>(data)};
}

MDB_val key_of(const char* name) {
  return val_of(name, std::strlen(name));
}

// RAII for transactions: aborts unless committed.
class Txn {
 public:
  Txn() = default;
  ~Txn() { abort(); }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  MDB_txn** out() { return &txn_; }
  MDB_txn* get() const { return txn_; }
  int commit() {
    int rc = mdb_txn_commit(txn_);
    txn_ = nullptr;
    return rc;
  }
  void abort() {
    if (txn_ != nullptr) mdb_txn_abort(txn_);
    txn_ = nullptr;
  }

 private:
  MDB_txn* txn_ = nullptr;
};

class Cursor {
 public:
  Cursor(MDB_txn* txn, MDB_dbi dbi) { rc_ = mdb_cursor_open(txn, dbi, &c_); }
  ~Cursor() {
    if (c_ != nullptr) mdb_cursor_close(c_);
  }
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  MDB_cursor* get() const { return c_; }
  int status() const { return rc_; }

 private:
  MDB_cursor* c_ = nullptr;
  int rc_ = 0;
};

std::string random_journal_id() {
  unsigned char bytes[8] = {};
  std::size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n <= 0) throw Error("cannot draw a random journal id: getrandom failed");
    got += static_cast<std::size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (unsigned char b : bytes) {
    id.push_back(kHex[b >> 4]);
    id.push_back(kHex[b & 0xF]);
  }
  return id;
}

std::string lmdb_error(const std::string& what, const std::filesystem::path& dir, int rc) {
  return what + " " + quoted(dir) + ": " + mdb_strerror(rc);
}

}  // namespace

std::string_view record_set_name(RecordSet s) noexcept {
  return kSetNames[static_cast<std::size_t>(s)];
}

std::unique_ptr<Journal> Journal::open_for_writing(const JournalConfig& config) {
  prepare_journal_directory(config.dir);
  std::unique_ptr<Journal> j(new Journal());
  j->dir_ = config.dir;
  j->lock_ = std::make_unique<DirLock>(config.dir);
  j->max_map_bytes_ = config.max_map_bytes;
  j->map_limit_ = config.max_map_bytes;
  unsigned flags = MDB_NOTLS;
  switch (config.durability) {
    case Durability::Full:
      break;
    case Durability::NoMetaSync:
      flags |= MDB_NOMETASYNC;
      break;
    case Durability::Periodic:
    case Durability::None:
      flags |= MDB_NOSYNC;
      break;
  }
  j->reserve_seqs_ = config.durability != Durability::Full;
  j->open_env(flags, config.initial_map_bytes);
  // Readers of processes that died (kill -9) leave slots that would pin pages forever.
  int dead = 0;
  mdb_reader_check(j->env_, &dead);
  for (const char* f : {"data.mdb", "lock.mdb"}) chmod((config.dir / f).c_str(), 0600);
  j->open_databases(/*create=*/true);
  j->load_meta(/*create=*/true);
  return j;
}

std::unique_ptr<Journal> Journal::open_read_only(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir / "data.mdb", ec)) {
    throw Error("no journal at " + quoted(dir) + " (data.mdb is missing)");
  }
  if (std::filesystem::file_size(dir / "data.mdb", ec) == 0 && !ec) {
    throw Error("journal file " + quoted(dir / "data.mdb") +
                " is empty: it is damaged or not a journal");
  }
  std::unique_ptr<Journal> j(new Journal());
  j->dir_ = dir;
  j->read_only_ = true;
  j->open_env(MDB_RDONLY | MDB_NOTLS, 0);
  j->open_databases(/*create=*/false);
  j->load_meta(/*create=*/false);
  j->refresh_counts();
  return j;
}

Journal::~Journal() {
  // A clean close gives back the unused reservation: the next run resumes at next_seq.
  if (env_ != nullptr && reserve_seqs_ && seq_reserved_ > next_seq_) reserve_seqs(next_seq_);
  if (env_ != nullptr) mdb_env_close(env_);
}

void Journal::open_env(unsigned flags, std::size_t initial_map_bytes) {
  env_flags_ = flags;
  int rc = mdb_env_create(&env_);
  if (rc != 0) throw Error(lmdb_error("cannot create an LMDB environment for", dir_, rc));
  mdb_env_set_maxdbs(env_, 8);
  if (initial_map_bytes != 0) mdb_env_set_mapsize(env_, initial_map_bytes);
  rc = mdb_env_open(env_, dir_.c_str(), flags, 0600);
  if (rc == EACCES && (flags & MDB_RDONLY) != 0 && (flags & MDB_NOLOCK) == 0) {
    // A reader takes a slot in LMDB's reader table, lock.mdb, which it opens for writing
    // and creates if missing. Every writer creates it, so where it is missing no writer
    // has the journal open: a copy in a directory this reader may not write is then read
    // without the table. Where it exists, a writer may be at work, and reading without a
    // slot would let it reuse pages being read: refused. (On a read-only file system
    // LMDB itself reads without the table.)
    std::error_code ec;
    const bool has_reader_table = std::filesystem::exists(dir_ / "lock.mdb", ec) || ec;
    mdb_env_close(env_);
    env_ = nullptr;
    if (!has_reader_table) {
      open_env(flags | MDB_NOLOCK, initial_map_bytes);
      return;
    }
    throw Error("cannot open journal " + quoted(dir_) + ": its reader table " +
                quoted(dir_ / "lock.mdb") +
                " is not writable by this user (Permission denied); a reader needs a slot "
                "there, since a logger may be writing the journal");
  }
  if (rc != 0) {
    mdb_env_close(env_);
    env_ = nullptr;
    if (rc == MDB_INVALID) {
      throw Error("journal file " + quoted(dir_ / "data.mdb") +
                  " is not an LMDB database (MDB_INVALID): it is damaged or not a journal");
    }
    if (rc == MDB_VERSION_MISMATCH) {
      throw Error("journal " + quoted(dir_) + " was written by an incompatible LMDB version");
    }
    throw Error(lmdb_error("cannot open journal", dir_, rc));
  }
}

void Journal::open_databases(bool create) {
  Txn txn;
  int rc = mdb_txn_begin(env_, nullptr, create ? 0 : MDB_RDONLY, txn.out());
  if (rc == MDB_MAP_RESIZED && !create) {
    rc = mdb_env_set_mapsize(env_, 0);
    if (rc == 0) rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, txn.out());
  }
  if (rc != 0) throw Error(lmdb_error("cannot begin a transaction on journal", dir_, rc));

  // Refuse an LMDB environment of something else: its main DB may only name ours.
  MDB_dbi main_dbi = 0;
  rc = mdb_dbi_open(txn.get(), nullptr, 0, &main_dbi);
  if (rc != 0) throw Error(lmdb_error("cannot read journal", dir_, rc));
  bool has_meta = false;
  std::size_t entries = 0;
  {
    Cursor c(txn.get(), main_dbi);
    MDB_val k, v;
    for (int r = mdb_cursor_get(c.get(), &k, &v, MDB_FIRST); r == 0;
         r = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT)) {
      ++entries;
      std::string_view name(static_cast<const char*>(k.mv_data), k.mv_size);
      bool ours = name == kMetaName;
      for (const char* s : kSetNames) ours = ours || name == s;
      if (!ours) {
        throw Error("journal " + quoted(dir_) +
                    " holds an LMDB environment that is not a flightlog journal");
      }
      has_meta = has_meta || name == kMetaName;
    }
  }
  if (!has_meta && (entries > 0 || !create)) {
    throw Error("journal " + quoted(dir_) + " is not a flightlog journal (no meta database)");
  }
  const unsigned dbflags = create ? MDB_CREATE : 0;
  for (std::size_t i = 0; i < kRecordSets; ++i) {
    rc = mdb_dbi_open(txn.get(), kSetNames[i], dbflags, &dbi_[i]);
    if (rc != 0) throw Error(lmdb_error("cannot open database of journal", dir_, rc));
  }
  rc = mdb_dbi_open(txn.get(), kMetaName, dbflags, &meta_dbi_);
  if (rc != 0) throw Error(lmdb_error("cannot open meta database of journal", dir_, rc));
  rc = txn.commit();  // a read-only commit keeps the DBI handles too
  if (rc != 0) throw Error(lmdb_error("cannot open journal", dir_, rc));
}

void Journal::load_meta(bool create) {
  Txn txn;
  int rc = mdb_txn_begin(env_, nullptr, create ? 0 : MDB_RDONLY, txn.out());
  if (rc != 0) throw Error(lmdb_error("cannot read meta of journal", dir_, rc));
  MDB_val k = key_of("format_version"), v;
  rc = mdb_get(txn.get(), meta_dbi_, &k, &v);
  if (rc == MDB_NOTFOUND) {
    if (!create) throw Error("journal " + quoted(dir_) + " has no format version: not initialised");
    const std::uint32_t version = kJournalFormatVersion;
    journal_id_ = random_journal_id();
    MDB_val vv = val_of(&version, sizeof version);
    MDB_val ik = key_of("journal_id"), iv = val_of(journal_id_.data(), journal_id_.size());
    unsigned char seq[8];
    be64(1, seq);
    MDB_val sk = key_of("next_seq"), sv = val_of(seq, 8);
    if (mdb_put(txn.get(), meta_dbi_, &k, &vv, 0) != 0 ||
        mdb_put(txn.get(), meta_dbi_, &ik, &iv, 0) != 0 ||
        mdb_put(txn.get(), meta_dbi_, &sk, &sv, 0) != 0) {
      throw Error("cannot initialise journal " + quoted(dir_));
    }
    rc = txn.commit();
    if (rc != 0) throw Error(lmdb_error("cannot initialise journal", dir_, rc));
    next_seq_ = 1;
    refresh_counts();
    return;
  }
  if (rc != 0) throw Error(lmdb_error("cannot read meta of journal", dir_, rc));
  std::uint32_t version = 0;
  if (v.mv_size != sizeof version)
    throw Error("journal " + quoted(dir_) + " has a damaged format version");
  std::memcpy(&version, v.mv_data, sizeof version);
  if (version != kJournalFormatVersion) {
    const std::string what = "journal " + quoted(dir_) + " has format version " +
                             std::to_string(version) + "; this flightlog reads version " +
                             std::to_string(kJournalFormatVersion);
    if (version > kJournalFormatVersion) {
      throw NewerFormatError(what + " (written by a newer flightlog)");
    }
    throw Error(what);
  }
  k = key_of("journal_id");
  if (mdb_get(txn.get(), meta_dbi_, &k, &v) != 0 || v.mv_size == 0 || v.mv_size > 64) {
    throw Error("journal " + quoted(dir_) + " has no journal id: damaged meta database");
  }
  journal_id_.assign(static_cast<const char*>(v.mv_data), v.mv_size);
  k = key_of("next_seq");
  next_seq_ = 1;
  if (mdb_get(txn.get(), meta_dbi_, &k, &v) == 0 && v.mv_size == 8)
    next_seq_ = from_be64(v.mv_data);
  // Never reuse a sequence, even if meta lags the data: resume after the largest key.
  for (std::size_t i = 0; i < kRecordSets; ++i) {
    Cursor c(txn.get(), dbi_[i]);
    MDB_val ck, cv;
    if (mdb_cursor_get(c.get(), &ck, &cv, MDB_LAST) == 0 && ck.mv_size == 8) {
      next_seq_ = std::max(next_seq_, from_be64(ck.mv_data) + 1);
    }
  }
  // A run that stopped without closing (crash, power loss) may have handed out seqs
  // up to its reservation, whatever a power loss undid since: resume above them all.
  k = key_of("seq_reserved");
  if (!read_only_ && mdb_get(txn.get(), meta_dbi_, &k, &v) == 0 && v.mv_size == 8) {
    next_seq_ = std::max(next_seq_, from_be64(v.mv_data));
  }
  seq_reserved_ = next_seq_;
  k = key_of("evicted");
  if (mdb_get(txn.get(), meta_dbi_, &k, &v) == 0 && v.mv_size == sizeof evicted_) {
    std::memcpy(evicted_.data(), v.mv_data, sizeof evicted_);
  }
  k = key_of("cleaned_up");
  if (mdb_get(txn.get(), meta_dbi_, &k, &v) == 0 && v.mv_size == sizeof cleaned_up_) {
    std::memcpy(&cleaned_up_, v.mv_data, sizeof cleaned_up_);
  }
  txn.abort();
  if (!read_only_) refresh_counts();
}

JournalCounts Journal::count_in(MDB_txn* txn) const {
  JournalCounts c;
  for (std::size_t i = 0; i < kRecordSets; ++i) {
    MDB_stat st{};
    if (mdb_stat(txn, dbi_[i], &st) == 0) c.entries[i] = st.ms_entries;
  }
  c.next_seq = next_seq_;
  c.evicted = evicted_;
  c.cleaned_up = cleaned_up_;
  MDB_envinfo info{};
  MDB_stat est{};
  mdb_env_info(env_, &info);
  mdb_env_stat(env_, &est);
  c.map_bytes = info.me_mapsize;
  c.used_bytes = (info.me_last_pgno + 1) * est.ms_psize;
  return c;
}

void Journal::publish_counts(const JournalCounts& c) {
  std::lock_guard lock(counts_mu_);
  counts_ = c;
}

void Journal::refresh_counts() {
  std::shared_lock lock(resize_mu_);
  Txn txn;
  if (begin_read(txn.out()) != 0) return;
  if (read_only_) {
    // Another process may have advanced next_seq; report what the file says.
    MDB_val k = key_of("next_seq"), v;
    if (mdb_get(txn.get(), meta_dbi_, &k, &v) == 0 && v.mv_size == 8) {
      next_seq_ = from_be64(v.mv_data);
    }
  }
  store_counts(txn.get());
}

int Journal::begin_read(MDB_txn** txn) const {
  if (!lost_.empty()) return MDB_PANIC;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, txn);
  if (rc == MDB_MAP_RESIZED) {
    // Another process grew the map: adopt its size (no txn of ours is open here, as
    // read-only journals run one scan at a time) and retry. If the larger map does not
    // fit (an address-space limit), LMDB has unmapped the file: nothing may read it now.
    rc = mdb_env_set_mapsize(env_, 0);
    if (rc != 0) {
      lost_ = std::string("cannot map the journal at the size its writer grew it to: ") +
              mdb_strerror(rc);
      return rc;
    }
    rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, txn);
  }
  return rc;
}

int Journal::begin_write(MDB_txn** txn) {
  if (!lost_.empty()) return MDB_PANIC;
  return mdb_txn_begin(env_, nullptr, 0, txn);
}

JournalCounts Journal::counts() const {
  std::lock_guard lock(counts_mu_);
  return counts_;
}

std::string Journal::unless_lost(std::string why) const {
  return lost_.empty() ? std::move(why) : lost_;
}

bool Journal::grow_map_locked() {
  MDB_envinfo info{};
  mdb_env_info(env_, &info);
  if (info.me_mapsize >= max_map_bytes_ || std::chrono::steady_clock::now() < retry_growth_at_) {
    return false;
  }
  const std::size_t next = std::min(max_map_bytes_, info.me_mapsize * 2);
  std::unique_lock lock(resize_mu_);
  const int rc = mdb_env_set_mapsize(env_, next);
  crash_point(CrashPoint::MapGrowth);
  if (rc == 0) {
    map_limit_ = max_map_bytes_;
    growth_error_.clear();
    return true;
  }
  map_limit_ = info.me_mapsize;
  retry_growth_at_ = std::chrono::steady_clock::now() + kGrowthRetry;
  growth_error_ = "journal is full: its map cannot grow from " + std::to_string(info.me_mapsize) +
                  " to " + std::to_string(next) + " bytes (" + mdb_strerror(rc) +
                  "); growing is tried again every " + std::to_string(kGrowthRetry.count()) + " s";
  // LMDB unmapped the file before it failed to map it larger: no transaction may begin
  // on the environment now. Open it again at the size it had; the unmapping just gave
  // that much address space back.
  mdb_env_close(env_);
  env_ = nullptr;
  try {
    open_env(env_flags_, info.me_mapsize);
    open_databases(/*create=*/false);
  } catch (const Error& e) {
    if (env_ != nullptr) mdb_env_close(env_);
    env_ = nullptr;
    lost_ = growth_error_ + "; then " + e.what() + " (restart the process to reopen it)";
  }
  return false;
}

// A full journal (the map at journal_max_bytes) must take records again as soon as
// deletions (delivery, cleanup, eviction) free pages. LMDB reuses a page freed by
// transaction T only from transaction T+2 on, because T-1's snapshot still uses it; so
// right after a cleanup the batch may not fit though the journal is nearly empty. One
// tiny commit moves that on. If the batch still does not fit, what fits of it is stored:
// the first half, recursively, then the rest; what is not stored is dropped (and
// counted). A first half that stores nothing drops its rest untried: when nothing fits,
// that costs log2(batch size) failed transactions, not one per record, at the price of
// a small record behind a big one that did not fit (dropped with it, though it might
// have fit on its own).
CommitOutcome Journal::commit(std::span<const std::byte> arena,
                              std::span<const PendingRecord> records, std::size_t max_queued) {
  CommitOutcome out = commit_all(arena, records, max_queued);
  if (out.dropped_journal_full == 0) return out;
  return commit_what_fits(arena, records, max_queued);
}

CommitOutcome Journal::commit_all(std::span<const std::byte> arena,
                                  std::span<const PendingRecord> records, std::size_t max_queued) {
  CommitOutcome out = commit_whole(arena, records, max_queued);
  if (out.dropped_journal_full == 0 || touch_meta() != 0) return out;
  return commit_whole(arena, records, max_queued);
}

CommitOutcome Journal::commit_what_fits(std::span<const std::byte> arena,
                                        std::span<const PendingRecord> records,
                                        std::size_t max_queued) {
  CommitOutcome out = commit_whole(arena, records, max_queued);
  if (out.dropped_journal_full == 0 || records.size() == 1) return out;
  const std::size_t half = records.size() / 2;
  CommitOutcome first = commit_what_fits(arena, records.first(half), max_queued);
  CommitOutcome rest;
  if (first.committed == 0 && first.dropped_journal_full == half) {
    rest.dropped_journal_full = records.size() - half;  // nothing fits: do not try
  } else {
    rest = commit_what_fits(arena, records.subspan(half), max_queued);
  }
  CommitOutcome merged;
  merged.committed = first.committed + rest.committed;
  merged.dropped_journal_full = first.dropped_journal_full + rest.dropped_journal_full;
  merged.dropped_error = first.dropped_error + rest.dropped_error;
  for (std::size_t p = 0; p < 4; ++p) merged.evicted[p] = first.evicted[p] + rest.evicted[p];
  merged.error = !first.error.empty() ? first.error : rest.error;
  return merged;
}

// At the map's limit (journal_max_bytes, or the size a growth failed at), records may
// fill the map only up to 7/8: deleting needs free pages too (LMDB copies every page it
// changes), and a map filled to the last page could never be emptied again, not by
// delivery, cleanup or eviction. Below the limit the map grows instead, so this is
// checked only there. Counts the pages of every tree (records, failed, meta and the
// directory of databases); pages on LMDB's free list are not in use and do not count.
bool Journal::over_record_budget(MDB_txn* txn) const {
  MDB_envinfo info{};
  mdb_env_info(env_, &info);
  if (info.me_mapsize < map_limit_) return false;
  std::size_t pages = 0;
  std::size_t page_size = 4096;
  auto add = [&](MDB_dbi dbi) {
    MDB_stat st{};
    if (mdb_stat(txn, dbi, &st) != 0) return;
    pages += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
    page_size = st.ms_psize;
  };
  for (MDB_dbi dbi : dbi_) add(dbi);
  add(meta_dbi_);
  return pages * page_size > map_limit_ - map_limit_ / 8;
}

int Journal::touch_meta() {
  Txn txn;
  int rc = begin_write(txn.out());
  if (rc != 0) return rc;
  unsigned char next[8];
  be64(next_seq_, next);
  MDB_val k = key_of("next_seq"), v = val_of(next, 8);
  rc = mdb_put(txn.get(), meta_dbi_, &k, &v, 0);
  if (rc == 0) rc = txn.commit();
  if (rc != 0) txn.abort();
  return rc;
}

int Journal::evict_over(MDB_txn* txn, std::size_t max_queued, std::array<std::size_t, 4>& evicted) {
  if (max_queued == 0) return 0;
  std::uint64_t queued = 0;
  std::array<std::uint64_t, 4> per{};
  for (std::size_t p = 0; p < 4; ++p) {
    MDB_stat st{};
    mdb_stat(txn, dbi_[p], &st);
    per[p] = st.ms_entries;
    queued += st.ms_entries;
  }
  int rc = 0;
  // Lowest priority first, oldest first within it.
  for (std::size_t p = 4; p-- > 0 && queued > max_queued && rc == 0;) {
    Cursor c(txn, dbi_[p]);
    MDB_val ck, cv;
    while (queued > max_queued && per[p] > 0) {
      rc = mdb_cursor_get(c.get(), &ck, &cv, MDB_FIRST);
      if (rc == 0) rc = mdb_cursor_del(c.get(), 0);
      if (rc != 0) break;
      --per[p];
      --queued;
      ++evicted[p];
    }
  }
  if (rc == 0 && evicted != std::array<std::size_t, 4>{}) {
    auto total = evicted_;
    for (std::size_t p = 0; p < 4; ++p) total[p] += evicted[p];
    MDB_val ek = key_of("evicted"), ev = val_of(total.data(), sizeof total);
    rc = mdb_put(txn, meta_dbi_, &ek, &ev, 0);
  }
  return rc;
}

CommitOutcome Journal::commit_whole(std::span<const std::byte> arena,
                                    std::span<const PendingRecord> records,
                                    std::size_t max_queued) {
  CommitOutcome out;
  if (records.empty()) return out;
  if (reserve_seqs_ && next_seq_ + records.size() > seq_reserved_) {
    if (const int rc = reserve_seqs(next_seq_ + records.size() + kSeqReservation); rc != 0) {
      // At journal_max_bytes even the reservation's one value may not fit: a full journal.
      (rc == MDB_MAP_FULL && lost_.empty() ? out.dropped_journal_full : out.dropped_error) =
          records.size();
      out.error =
          unless_lost(std::string("cannot reserve sequence numbers durably: ") + mdb_strerror(rc));
      return out;
    }
  }
  for (;;) {
    Txn txn;
    int rc = begin_write(txn.out());
    if (rc != 0) {
      out.dropped_error = records.size();
      out.error = unless_lost(std::string("cannot begin a write transaction: ") + mdb_strerror(rc));
      return out;
    }
    std::uint64_t seq = next_seq_;
    unsigned char key[8];
    for (const auto& r : records) {
      be64(seq++, key);
      MDB_val k = val_of(key, 8);
      MDB_val v = val_of(arena.data() + r.offset, r.size);
      rc = mdb_put(txn.get(), dbi_[static_cast<std::size_t>(r.priority)], &k, &v, MDB_APPEND);
      if (rc != 0) break;
    }
    std::array<std::size_t, 4> evicted{};
    if (rc == 0) rc = evict_over(txn.get(), max_queued, evicted);
    if (rc == 0) {
      unsigned char next[8];
      be64(seq, next);
      MDB_val k = key_of("next_seq"), v = val_of(next, 8);
      rc = mdb_put(txn.get(), meta_dbi_, &k, &v, 0);
    }
    if (rc == 0 && over_record_budget(txn.get())) rc = MDB_MAP_FULL;
    if (rc == 0) {
      const std::uint64_t old_next = next_seq_;
      next_seq_ = seq;  // count_in reads it; restored below if the commit fails
      JournalCounts after = count_in(txn.get());
      if (evicted != std::array<std::size_t, 4>{}) crash_point(CrashPoint::Eviction);
      crash_point(CrashPoint::Commit);
      rc = txn.commit();
      if (rc == 0) {
        for (std::size_t p = 0; p < 4; ++p) evicted_[p] += evicted[p];
        after.evicted = evicted_;
        publish_counts(after);
        out.committed = records.size();
        out.evicted = evicted;
        return out;
      }
      next_seq_ = old_next;
      refresh_counts();
    }
    txn.abort();
    if (rc == MDB_MAP_FULL) {
      if (grow_map_locked()) continue;  // retry the whole batch in the larger map
      // At journal_max_bytes, or below it with a map that cannot grow now (an
      // address-space limit): a full journal either way, until deletions or a later
      // growth make room. A journal lost in the attempt is an error instead.
      if (!lost_.empty()) {
        out.dropped_error = records.size();
        out.error = lost_;
        return out;
      }
      out.dropped_journal_full = records.size();
      out.error = map_limit_ < max_map_bytes_ ? growth_error_
                                              : "journal is full at journal_max_bytes (" +
                                                    std::to_string(max_map_bytes_) + " bytes)";
      return out;
    }
    out.dropped_error = records.size();
    out.error = std::string("journal write failed: ") + mdb_strerror(rc);
    return out;
  }
}

std::size_t Journal::cleanup_before(std::int64_t cutoff_ns) {
  std::size_t removed = 0;
  // The first failure, reported once every set has had its turn: a damaged page in one
  // set does not keep old records of the others.
  std::string failure;
  // Deletes per transaction; halved whenever a full map cannot hold a transaction's
  // page copies (see over_record_budget()), down to one.
  std::size_t per_txn = kCleanupDeletesPerTxn;
  for (std::size_t i = 0; i < kRecordSets; ++i) {
    std::uint64_t resume = 0;
    std::optional<std::uint64_t> last_read;  // the set's last key read, for the message
    bool more = true;
    while (more) {
      Txn txn;
      int rc = begin_write(txn.out());
      std::size_t deleted = 0;
      std::uint64_t next_resume = resume;
      std::string failed_at;  // what failed, for the message
      more = false;
      if (rc != 0) failed_at = "cannot begin a write transaction on";
      if (rc == 0) {
        Cursor c(txn.get(), dbi_[i]);
        unsigned char start[8];
        be64(resume, start);
        MDB_val k = val_of(start, 8), v;
        int get = mdb_cursor_get(c.get(), &k, &v, MDB_SET_RANGE);
        while (get == 0) {
          if (k.mv_size != 8) {
            // Not a sequence number: damage, kept like an unreadable record (the dump
            // reports it).
            get = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT);
            continue;
          }
          last_read = from_be64(k.mv_data);
          std::int64_t ts = 0;
          const bool readable =
              peek_timestamp({static_cast<const std::byte*>(v.mv_data), v.mv_size}, ts);
          if (readable && ts < cutoff_ns) {
            rc = mdb_cursor_del(c.get(), 0);
            if (rc != 0) {
              failed_at = "cannot delete " + std::string(kSetNames[i]) + " record " +
                          std::to_string(*last_read) + " of";
              break;
            }
            ++deleted;
          }
          if (deleted >= per_txn) {
            // Resume after this key in a fresh transaction.
            next_resume = *last_read + 1;
            more = true;
            break;
          }
          get = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT);
        }
        // A damaged page, not the end of the set. LMDB marks the transaction failed, so
        // the deletes made in it are dropped with it.
        if (rc == 0 && get != 0 && get != MDB_NOTFOUND) {
          rc = get;
          failed_at = "cannot read the " + std::string(kSetNames[i]) + " records" +
                      (last_read ? " after seq " + std::to_string(*last_read) : "") + " of";
        }
      }
      const std::uint64_t total = cleaned_up_ + deleted;
      if (rc == 0 && deleted > 0) {
        MDB_val ck = key_of("cleaned_up"), cv = val_of(&total, sizeof total);
        rc = mdb_put(txn.get(), meta_dbi_, &ck, &cv, 0);
        if (rc == 0) {
          JournalCounts after = count_in(txn.get());
          crash_point(CrashPoint::Cleanup);
          rc = txn.commit();
          if (rc == 0) {
            after.cleaned_up = total;
            publish_counts(after);
          } else {
            refresh_counts();
          }
        }
        if (rc != 0) {
          failed_at = "cannot commit deletes of " + std::string(kSetNames[i]) + " records in";
        }
      }
      if (rc == MDB_MAP_FULL && per_txn > 1) {
        txn.abort();
        per_txn /= 2;
        more = true;  // the same range again, in smaller transactions
        continue;
      }
      if (rc != 0) {
        if (failure.empty()) failure = unless_lost(lmdb_error(failed_at + " journal", dir_, rc));
        break;  // on to the next set
      }
      resume = next_resume;
      if (deleted > 0) {
        cleaned_up_ = total;
        removed += deleted;
      }
    }
  }
  if (!failure.empty()) {
    throw Error("cleanup_offline_queue: deleted " + std::to_string(removed) +
                " records; older ones may remain: " + failure);
  }
  return removed;
}

int Journal::reserve_seqs(std::uint64_t bound) {
  unsigned char value[8];
  be64(bound, value);
  int rc = write_txn([&](MDB_txn* txn) {
    MDB_val k = key_of("seq_reserved"), v = val_of(value, 8);
    return mdb_put(txn, meta_dbi_, &k, &v, 0);
  });
  if (rc == 0) rc = mdb_env_sync(env_, 1);
  if (rc == 0) seq_reserved_ = bound;
  return rc;
}

int Journal::write_txn(const std::function<int(MDB_txn*)>& body) {
  for (;;) {
    Txn txn;
    int rc = begin_write(txn.out());
    if (rc != 0) return rc;
    rc = body(txn.get());
    if (rc == 0) {
      const JournalCounts after = count_in(txn.get());
      rc = txn.commit();
      if (rc == 0) {
        publish_counts(after);
        return 0;
      }
      refresh_counts();
    }
    txn.abort();
    if (rc != MDB_MAP_FULL) return rc;
    if (!grow_map_locked()) return rc;
  }
}

namespace {

// Reads record `seq` of `dbi` into `out` (a copy: the txn's pages may change under a put).
int get_record(MDB_txn* txn, MDB_dbi dbi, std::uint64_t seq, std::vector<std::byte>& out) {
  unsigned char key[8];
  be64(seq, key);
  MDB_val k = val_of(key, 8), v;
  int rc = mdb_get(txn, dbi, &k, &v);
  if (rc != 0) return rc;
  const auto* b = static_cast<const std::byte*>(v.mv_data);
  out.assign(b, b + v.mv_size);
  return 0;
}

int put_record(MDB_txn* txn, MDB_dbi dbi, std::uint64_t seq, std::span<const std::byte> bytes) {
  unsigned char key[8];
  be64(seq, key);
  MDB_val k = val_of(key, 8), v = val_of(bytes.data(), bytes.size());
  return mdb_put(txn, dbi, &k, &v, 0);
}

int del_record(MDB_txn* txn, MDB_dbi dbi, std::uint64_t seq) {
  unsigned char key[8];
  be64(seq, key);
  MDB_val k = val_of(key, 8);
  return mdb_del(txn, dbi, &k, nullptr);
}

// Moves record `seq` from `from` to `to`, stored as `bytes`. The key, and so the
// record's id, stays the same.
int move_record(MDB_txn* txn, MDB_dbi from, MDB_dbi to, std::uint64_t seq,
                std::span<const std::byte> bytes) {
  const int rc = del_record(txn, from, seq);
  return rc == 0 ? put_record(txn, to, seq, bytes) : rc;
}

}  // namespace

std::size_t Journal::update_each(std::span<const RecordRef> refs, const RecordUpdate& update) {
  std::size_t moved = 0;
  std::vector<std::byte> buf;
  const int rc = write_txn([&](MDB_txn* txn) {
    moved = 0;  // write_txn may run the body again after growing the map
    for (const auto& r : refs) {
      const MDB_dbi from = dbi_[static_cast<std::size_t>(r.set)];
      if (const int g = get_record(txn, from, r.seq, buf); g != 0) {
        if (g == MDB_NOTFOUND) continue;  // deleted meanwhile (cleanup, eviction)
        return g;
      }
      bool moved_this = false;
      if (const int u = update(txn, from, r.seq, buf, moved_this); u != 0) return u;
      moved += moved_this ? 1 : 0;
    }
    return 0;
  });
  return rc == 0 ? moved : 0;
}

std::size_t Journal::remove_delivered(std::span<const RecordRef> refs) {
  std::size_t removed = 0;
  const int rc = write_txn([&](MDB_txn* txn) {
    removed = 0;
    // One cursor per run of refs in the same set: after a delete the cursor already sits
    // on the next record, which is usually the next ref (a batch is a key-order prefix).
    std::size_t i = 0;
    while (i < refs.size()) {
      const RecordSet set = refs[i].set;
      Cursor c(txn, dbi_[static_cast<std::size_t>(set)]);
      if (c.status() != 0) return c.status();
      bool positioned = false;
      for (; i < refs.size() && refs[i].set == set; ++i) {
        unsigned char key[8];
        be64(refs[i].seq, key);
        MDB_val k{}, v{};
        int g = MDB_NOTFOUND;
        if (positioned) {
          g = mdb_cursor_get(c.get(), &k, &v, MDB_GET_CURRENT);
          if (g == 0 && !(k.mv_size == 8 && from_be64(k.mv_data) == refs[i].seq)) g = MDB_NOTFOUND;
        }
        if (g != 0) {
          k = val_of(key, 8);
          g = mdb_cursor_get(c.get(), &k, &v, MDB_SET);
        }
        if (g == MDB_NOTFOUND) {
          positioned = false;
          continue;
        }
        if (g != 0) return g;
        const int d = mdb_cursor_del(c.get(), 0);
        if (d != 0) return d;
        ++removed;
        positioned = true;
      }
    }
    crash_point(CrashPoint::Delete);
    return 0;
  });
  // Try again in parts when the failure may belong to part of the batch only:
  // - MDB_MAP_FULL: a full map has too few free pages for the copies one large delete
  //   makes (see over_record_budget()); smaller transactions need fewer, and each frees
  //   pages. Halved down to single records.
  // - a damaged page (MDB_PAGE_NOTFOUND, MDB_CORRUPTED) under some of the records: the
  //   others are still deleted, so a delivered batch is not sent again and again for the
  //   few records next to the damage. Damage lies in one set's tree, so the batch is
  //   first split by set (a batch holds each set's records together, in set order), then
  //   halved down to kDamageSplitFloor records, not to single ones: were every write to
  //   fail (a damaged free list), halving to the end would take 2n transactions on the
  //   commit thread, on every pass.
  constexpr std::size_t kDamageSplitFloor = 16;
  const bool damage = rc == MDB_PAGE_NOTFOUND || rc == MDB_CORRUPTED;
  if (damage && refs.size() > 1) {
    std::size_t first_set = 1;
    while (first_set < refs.size() && refs[first_set].set == refs[0].set) ++first_set;
    if (first_set < refs.size()) {
      return remove_delivered(refs.first(first_set)) + remove_delivered(refs.subspan(first_set));
    }
  }
  if ((rc == MDB_MAP_FULL && refs.size() > 1) || (damage && refs.size() > kDamageSplitFloor)) {
    const std::size_t half = refs.size() / 2;
    return remove_delivered(refs.first(half)) + remove_delivered(refs.subspan(half));
  }
  return rc == 0 ? removed : 0;
}

std::size_t Journal::count_attempt(std::span<const RecordRef> refs, std::uint16_t max_attempts,
                                   std::uint16_t status, std::string_view reason) {
  const MDB_dbi failed = dbi_[static_cast<std::size_t>(RecordSet::Failed)];
  return update_each(refs, [&](MDB_txn* txn, MDB_dbi from, std::uint64_t seq,
                               std::span<const std::byte> record, bool& moved) {
    DecodedRecord rec;
    if (!decode_record(record, rec).empty()) return 0;  // damaged: left for the dump to report
    const auto attempts = static_cast<std::uint16_t>(rec.attempts + 1);
    const auto updated = with_failure(record, attempts, status, reason);
    moved = attempts >= max_attempts;
    return moved ? move_record(txn, from, failed, seq, updated)
                 : put_record(txn, from, seq, updated);
  });
}

std::size_t Journal::move_to_failed(std::span<const RecordRef> refs, std::uint16_t status,
                                    std::string_view reason) {
  const MDB_dbi failed = dbi_[static_cast<std::size_t>(RecordSet::Failed)];
  return update_each(refs, [&](MDB_txn* txn, MDB_dbi from, std::uint64_t seq,
                               std::span<const std::byte> record, bool& moved) {
    moved = true;
    DecodedRecord rec;
    if (!decode_record(record, rec).empty()) {
      return move_record(txn, from, failed, seq, record);  // damaged: moved as it is
    }
    return move_record(txn, from, failed, seq, with_failure(record, rec.attempts, status, reason));
  });
}

std::size_t Journal::requeue_failed(std::optional<Priority> only, std::size_t max_queued) {
  std::size_t moved = 0;
  std::optional<std::uint64_t> read_stop;  // set if the failed set could not be read on
  std::array<std::size_t, 4> evicted{};
  const int rc = write_txn([&](MDB_txn* txn) {
    moved = 0;  // write_txn may run the body again after growing the map
    evicted = {};
    // Collect first: putting into another DB while iterating this one is fine in LMDB,
    // but deleting under the cursor while we also put keeps the loop simpler this way.
    struct Item {
      std::uint64_t seq;
      Priority priority;
      std::vector<std::byte> bytes;  // attempts and failure reset
    };
    std::vector<Item> items;
    {
      Cursor c(txn, dbi_[static_cast<std::size_t>(RecordSet::Failed)]);
      MDB_val k, v;
      std::uint64_t last_read = 0;
      int r = mdb_cursor_get(c.get(), &k, &v, MDB_FIRST);
      for (; r == 0; r = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8) continue;
        last_read = from_be64(k.mv_data);
        std::span<const std::byte> bytes(static_cast<const std::byte*>(v.mv_data), v.mv_size);
        DecodedRecord rec;
        if (!decode_record(bytes, rec).empty()) continue;
        if (only && rec.priority != *only) continue;
        items.push_back({last_read, rec.priority, with_failure(bytes, 0, 0, {})});
      }
      // A damaged page, not the end: moving only the records before it would look like
      // a complete retry.
      if (r != MDB_NOTFOUND) {
        read_stop = last_read;
        return r;
      }
    }
    for (const Item& item : items) {
      if (const int g =
              move_record(txn, dbi_[static_cast<std::size_t>(RecordSet::Failed)],
                          dbi_[static_cast<std::size_t>(item.priority)], item.seq, item.bytes);
          g != 0) {
        return g;
      }
      ++moved;
    }
    // Records moved back count against max_queued as committed ones do; evicting them in
    // this transaction keeps the queue from ever passing the limit (the next commit would
    // evict them, but a journal nothing is logged to would stay over it).
    return evict_over(txn, max_queued, evicted);
  });
  if (rc == 0 && evicted != std::array<std::size_t, 4>{}) {
    // As evict_over() asks: the totals follow the commit, and so do the published counts.
    for (std::size_t p = 0; p < 4; ++p) evicted_[p] += evicted[p];
    refresh_counts();
  }
  if (read_stop) {
    throw Error(
        lmdb_error("retry_failed: no record moved; cannot read the failed records "
                   "after seq " +
                       std::to_string(*read_stop) + " of journal",
                   dir_, rc));
  }
  if (rc != 0) {
    throw Error(lmdb_error("retry_failed: no record moved; cannot write journal", dir_, rc));
  }
  return moved;
}

int Journal::sync_to_device() {
  // A lost journal (env_ closed after a failed growth) has nothing to flush, and its
  // loss is already reported by every commit it refuses; counting it again here each
  // interval would bury that message under "device flush failed".
  return env_ != nullptr ? mdb_env_sync(env_, 1) : 0;
}

std::uint64_t Journal::scan(RecordSet set, std::uint64_t from_seq, std::size_t limit,
                            const Visitor& fn) const {
  std::shared_lock lock(resize_mu_);
  // Ended however `fn` leaves (it may throw): a read transaction left open would keep
  // its reader slot and pin its snapshot's pages, and the map must not grow under it.
  Txn txn;
  if (const int rc = begin_read(txn.out()); rc != 0) {
    throw Error(unless_lost(lmdb_error(
        "cannot read the " + std::string(record_set_name(set)) + " records of journal", dir_, rc)));
  }
  std::uint64_t next = 0;
  std::uint64_t last = from_seq;
  int failed = 0;
  // A key that is not a sequence number (damage too): its size, which may be 0.
  std::optional<std::size_t> bad_key_bytes;
  {
    Cursor c(txn.get(), dbi_[static_cast<std::size_t>(set)]);
    unsigned char start[8];
    be64(from_seq, start);
    MDB_val k = val_of(start, 8), v;
    int rc = mdb_cursor_get(c.get(), &k, &v, MDB_SET_RANGE);
    std::size_t seen = 0;
    while (rc == 0) {
      if (k.mv_size != 8) {
        bad_key_bytes = k.mv_size;
        break;
      }
      const std::uint64_t seq = from_be64(k.mv_data);
      if (seen == limit) {
        next = seq;
        break;
      }
      fn(seq, {static_cast<const std::byte*>(v.mv_data), v.mv_size});
      last = seq;
      ++seen;
      rc = mdb_cursor_get(c.get(), &k, &v, MDB_NEXT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) failed = rc;  // a damaged page, not the end
  }
  txn.abort();
  const std::string where =
      "the " + std::string(record_set_name(set)) + " records after seq " + std::to_string(last);
  if (failed != 0) throw Error(lmdb_error("cannot read " + where + " of journal", dir_, failed));
  if (bad_key_bytes) {
    throw Error("cannot read " + where + " of journal " + quoted(dir_) + ": a key of " +
                std::to_string(*bad_key_bytes) +
                " bytes, not an 8-byte sequence number (the journal is damaged)");
  }
  return next;
}

}  // namespace flightlog::detail
