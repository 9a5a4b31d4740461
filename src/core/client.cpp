// Client: wires the hot path, the writer and the journal together, and holds the hot
// path itself (log_* below), the code every caller's loop runs.
#include "flightlog/client.hpp"

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <thread>
#include <type_traits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "core/counters.hpp"
#include "core/crash_flush.hpp"
#include "core/options_check.hpp"
#include "core/threads.hpp"
#include "hot_path/clock.hpp"
#include "hot_path/hot_arena.hpp"
#include "hot_path/producers.hpp"
#include "hot_path/queue.hpp"
#include "hot_path/schema_table.hpp"
#include "hot_path/slot.hpp"
#include "journal/journal.hpp"
#include "uploader/https_transport.hpp"
#include "uploader/uploader.hpp"
#include "writer/writer.hpp"

namespace flightlog {

using namespace detail;

namespace {

std::atomic<std::uint64_t> g_next_client_id{1};

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// memcpy that accepts an empty source: an empty string_view may have a null data(),
// and memcpy from null is undefined even for zero bytes.
inline void copy_bytes(void* dst, const void* src, std::size_t n) noexcept {
  if (n != 0) std::memcpy(dst, src, n);
}

// Bytes a value takes in a slot (the journal uses the same encoding).
inline std::size_t encoded_size(const Value& v) noexcept {
  switch (v.type()) {
    case Value::Type::Double:
    case Value::Type::Int:
      return 8;
    case Value::Type::Bool:
      return 1;
    case Value::Type::String:
      return 4 + v.as_string().size();
  }
  return 0;
}

inline std::byte* put_value(std::byte* dst, const Value& v) noexcept {
  switch (v.type()) {
    case Value::Type::Double: {
      const double d = v.as_double();
      std::memcpy(dst, &d, 8);
      return dst + 8;
    }
    case Value::Type::Int: {
      const std::int64_t i = v.as_int();
      std::memcpy(dst, &i, 8);
      return dst + 8;
    }
    case Value::Type::Bool:
      *dst = std::byte{v.as_bool() ? std::uint8_t{1} : std::uint8_t{0}};
      return dst + 1;
    case Value::Type::String: {
      const auto s = v.as_string();
      const auto len = static_cast<std::uint32_t>(s.size());
      std::memcpy(dst, &len, 4);
      copy_bytes(dst + 4, s.data(), s.size());
      return dst + 4 + s.size();
    }
  }
  return dst;
}

inline std::byte* put_field(std::byte* dst, const Field& f) noexcept {
  dst[0] = static_cast<std::byte>(f.value.type());
  dst[1] = static_cast<std::byte>(f.name.size());
  copy_bytes(dst + 2, f.name.data(), f.name.size());
  return put_value(dst + 2 + f.name.size(), f.value);
}

// Size of a named field in a slot. Its name's length must fit the slot's one length
// byte (<= 255): the caller checks that apart, as no size can stand for "too long" in a
// sum of sizes without wrapping around.
inline std::size_t field_size(const Field& f) noexcept {
  return 2 + f.name.size() + encoded_size(f.value);
}

// The journal directory of memory-only mode (enable_offline = false): a private
// directory on tmpfs (/dev/shm), so the journal's pages live in RAM, bounded by
// journal_max_bytes and offline_max_queue_size. Removed when the client closes.
class MemoryDir {
 public:
  MemoryDir() = default;
  MemoryDir(const MemoryDir&) = delete;
  MemoryDir& operator=(const MemoryDir&) = delete;
  ~MemoryDir() {
    if (!path_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  const std::filesystem::path& create() {
    const std::filesystem::path base = std::filesystem::is_directory("/dev/shm")
                                           ? std::filesystem::path("/dev/shm")
                                           : std::filesystem::temp_directory_path();
    std::string tmpl = (base / "flightlog-memory.XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      throw Error("memory-only mode: cannot create a directory under " + base.string());
    }
    path_ = tmpl;
    return path_;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace

// alignas(64): the hot line below starts the object, so it is one cache line wherever the
// allocator puts the Impl (malloc aligns to 16; the line would straddle two in half
// the placements, and a call after an idle pause would then miss twice).
class alignas(64) Client::Impl {
 public:
  // `arena`: where the hot path's objects go (see HotArena); this Impl is its first
  // object, made with the operator new below, or nullptr (malloc).
  Impl(Options o, HotArena* arena)
      : clock_(hot_clock_for(o.clock_source)),
        id_(g_next_client_id.fetch_add(1)),
        producers_id_(ProducerRegistry::next_id()),
        max_record_bytes_(o.max_record_bytes),
        full_policy_(o.full_policy),
        max_record_slots_(slots_for(o.max_record_bytes)),
        options_(std::move(o)),
        queues_(make_queue_set(options_.max_producer_threads)),
        producers_(producers_id_, queues_, options_.max_producer_threads, max_record_slots_,
                   arena) {
    // Every thread of the client (the HTTPS client's io thread, the writer's, the
    // uploader's) starts inside this scope, so each is born on the background CPUs; the
    // caller's own CPU set is back when the constructor ends, or throws.
    const ScopedThreadAffinity background(options_.background_cpus);
    JournalConfig jc;
    jc.dir = options_.offline_dir;
    jc.durability = options_.durability;
    if (!options_.enable_offline) {
      jc.dir = memory_dir_.create();
      jc.durability = Durability::None;  // RAM: nothing to flush
    }
    // Check the endpoint before anything starts, so a typo fails the constructor.
    std::unique_ptr<Transport> transport;
    std::string target;
    if (!options_.endpoint.empty()) transport = make_https_transport(options_, target);
    jc.initial_map_bytes = options_.journal_initial_bytes;
    jc.max_map_bytes = options_.journal_max_bytes;
    journal_ = Journal::open_for_writing(jc);
    WriterConfig wc;
    wc.batch_max_records = options_.batch_max_records;
    wc.batch_max_delay = options_.batch_max_delay;
    wc.poll_interval = options_.writer_poll_interval;
    wc.min_commit_interval = options_.min_commit_interval;
    wc.durability = options_.durability;
    wc.periodic_sync_interval = options_.periodic_sync_interval;
    wc.max_queued = options_.offline_max_queue_size;
    wc.max_record_slots = max_record_slots_;
    if (clock_ == HotClock::Cached) wc.cached_clock = &cached_clock_;
    writer_ =
        std::make_unique<Writer>(wc, *journal_, queues_, producers_, schemas_, writer_counters_);
    if (transport) {
      UploaderConfig uc;
      uc.format = options_.upload_format;
      uc.target = target;
      uc.api_key = options_.api_key;
      uc.clickhouse_table = options_.clickhouse_table;
      uc.clickhouse_user = options_.clickhouse_user;
      uc.gzip = options_.upload_gzip;
      uc.auto_sync = options_.offline_auto_sync;
      uc.interval = options_.offline_sync_interval;
      uc.batch_max_records = options_.upload_batch_max_records;
      uc.batch_max_bytes = options_.upload_batch_max_bytes;
      uc.max_attempts = options_.max_attempts;
      uc.backoff_base = options_.backoff_base;
      uc.backoff_cap = options_.backoff_cap;
      uploader_ = std::make_unique<Uploader>(uc, *journal_, *writer_, std::move(transport));
    }
    crash_flush_.attach(writer_.get());
  }

  ~Impl() {
    closed_.store(true, std::memory_order_release);
    uploader_.reset();  // cancels a request in flight; the journal keeps what is unsent
    writer_->stop();    // drains and commits everything enqueued before
  }

  // The Impl is the first object of its client's HotArena (the HotArena::Scope around
  // `new Impl` names it) and owns it: deleting the Impl, after its members (the queues
  // and producers in the arena among them) are destroyed, unmaps the arena.
  static void* operator new(std::size_t size) { return hot_new(size); }
  static void operator delete(void* p) noexcept {
    if (HotArena* arena = HotArena::owner_of(p)) {
      HotArena::destroy(arena);
    } else {
      hot_free(p);
    }
  }

  SyncResult sync() { return uploader_ ? uploader_->sync_now() : SyncResult{}; }

  std::size_t retry_failed(std::optional<Priority> only) {
    return writer_->call(
        [&] { return journal_->requeue_failed(only, options_.offline_max_queue_size); });
  }

  std::uint64_t id() const noexcept { return id_; }

  // ---- Hot path ---------------------------------------------------------------------

  // The schema form, from Client::log_prediction(const Schema&, ...).
  // `Values`: std::initializer_list<Value> or std::span<const Value>.
  template <typename Values>
  [[gnu::always_inline]] LogResult log_values(std::uint64_t schema_owner, std::uint32_t schema_id,
                                              std::size_t want_in, std::size_t want_out, Values in,
                                              Values out, Priority p) noexcept {
    ProducerRegistry::prefetch_queue_state(static_cast<std::size_t>(p));
    if (closed_.load(std::memory_order_relaxed)) return reject(hot_.closed, LogResult::Closed);
    if (schema_owner != id_ || in.size() != want_in || out.size() != want_out) {
      return reject(hot_.invalid, LogResult::Invalid);
    }
    return log_schema_form(static_cast<std::uint16_t>(schema_id), std::data(in), in.size(),
                           std::data(out), out.size(), p, nullptr, 0);
  }

  // Builds and enqueues a schema-form record: tags and values, no names.
  // - From the schema form: `In` and `Out` are Value; `pr` is nullptr (looked up here,
  //   after the checks, as every form does) and `names_bytes` 0.
  // - From a remembered named-form shape: they are Field (their names are in the schema
  //   `schema_id`); `pr` is the caller's producer; `names_bytes` is what the names would
  //   take, so max_record_bytes judges the record as the named form it was logged in.
  template <typename In, typename Out>
  [[gnu::always_inline]] LogResult log_schema_form(std::uint16_t schema_id, const In* in,
                                                   std::size_t n_in, const Out* out,
                                                   std::size_t n_out, Priority p, Producer* pr,
                                                   std::size_t names_bytes) noexcept {
    constexpr bool kNamed = std::is_same_v<In, Field>;
    const std::size_t n = n_in + n_out;
    // Fast path: up to 5 doubles or integers (the W1 shape) fill one slot, 16 + 8 + 8n
    // <= 64 bytes. Tags and payloads are gathered into registers (five named words, not
    // an array: a 16-byte load of two words stored one by one would stall on store
    // forwarding), and the slot is written with four 16-byte stores (why: see Slot). A
    // bool or string sends the call down the general path below.
    if (n <= 5) [[likely]] {
      std::uint64_t w0 = 0, w1 = 0, w2 = 0, w3 = 0, w4 = 0, tags = 0;
      bool simple = true;
      auto take = [&](std::size_t i, std::uint64_t& word) noexcept {
        if (i >= n) return;
        const Value& v = i < n_in ? value_of(in[i]) : value_of(out[i - n_in]);
        const Value::Type t = v.type();
        simple &= (t == Value::Type::Double) | (t == Value::Type::Int);
        tags |= std::uint64_t{static_cast<std::uint8_t>(t)} << (8 * i);
        word = v.payload8();
      };
      take(0, w0);
      take(1, w1);
      take(2, w2);
      take(3, w3);
      take(4, w4);
      if (simple) [[likely]] {
        if (kNamed && kSlotHeaderBytes + names_bytes + 8 * n > max_record_bytes_) {
          return reject(hot_.too_large, LogResult::TooLarge);
        }
        if (pr == nullptr && (pr = local_producer()) == nullptr) {
          return reject(hot_.invalid, LogResult::Invalid);
        }
        // The clock is read this late on purpose: rdtsc is microcoded and holds up the
        // instructions behind it, so the loads the call depends on (the client's line,
        // the thread's cache, the producer's tokens, which miss after an idle pause) are
        // issued first and their misses overlap it. The record's time is a few ns later.
        __builtin_prefetch(&pr->tokens[static_cast<std::size_t>(p) & 3]);
        const std::uint64_t now = read_clock();
        const std::uint64_t head = header_word1(
            SlotHeader{now, schema_id, 1, RecordKind::Prediction, static_cast<std::uint8_t>(n_in),
                       static_cast<std::uint8_t>(n_out), 0});
        // On a big-endian machine the tag bytes would need reversing; flightlog's
        // supported targets are little-endian (x86-64, AArch64).
        static_assert(std::endian::native == std::endian::little);
        Slot slot;
        slot.store16(0, now, head);
        slot.store16(1, tags, w0);
        slot.store16(2, w1, w2);
        slot.store16(3, w3, w4);
        return push(pr, p, &slot, 1);
      }
    }
    return log_schema_form_general(schema_id, in, n_in, out, n_out, p, pr, names_bytes);
  }

  // log_schema_form() for any other shape: more than 5 values, a bool or a string, more
  // than one slot. Out of line, so that the fast path above is a short run of code: the
  // first call after a pause fetches its instructions again, and a long function with the
  // general path woven through it costs that call more lines.
  template <typename In, typename Out>
  [[gnu::noinline]] LogResult log_schema_form_general(std::uint16_t schema_id, const In* in,
                                                      std::size_t n_in, const Out* out,
                                                      std::size_t n_out, Priority p, Producer* pr,
                                                      std::size_t names_bytes) noexcept {
    constexpr bool kNamed = std::is_same_v<In, Field>;
    const std::size_t n = n_in + n_out;
    std::size_t bytes = kSlotHeaderBytes + schema_tag_bytes(n);
    for (std::size_t i = 0; i < n_in; ++i) bytes += encoded_size(value_of(in[i]));
    for (std::size_t i = 0; i < n_out; ++i) bytes += encoded_size(value_of(out[i]));
    if constexpr (kNamed) {
      if (bytes - schema_tag_bytes(n) + names_bytes > max_record_bytes_) {
        return reject(hot_.too_large, LogResult::TooLarge);
      }
      // Short names can take less room than the schema form's padded tags: a record just
      // under the limit as named fields may not fit max_record_slots in the schema form.
      if (bytes > max_record_bytes_) {
        return log_fields(read_clock(), RecordKind::Prediction, {}, in, n_in, out, n_out, p, pr);
      }
    } else if (bytes > max_record_bytes_) {
      return reject(hot_.too_large, LogResult::TooLarge);
    }
    if (pr == nullptr && (pr = local_producer()) == nullptr) {
      return reject(hot_.invalid, LogResult::Invalid);
    }

    const SlotHeader h{read_clock(),
                       schema_id,
                       static_cast<std::uint16_t>(slots_for(bytes)),
                       RecordKind::Prediction,
                       static_cast<std::uint8_t>(n_in),
                       static_cast<std::uint8_t>(n_out),
                       0};
    auto fill = [&](std::byte* dst) noexcept {
      write_slot_header(dst, h);
      std::byte* tags = dst + kSlotHeaderBytes;
      std::byte* cur = tags + schema_tag_bytes(n);
      std::memset(tags + n, 0, schema_tag_bytes(n) - n);
      for (std::size_t i = 0; i < n_in; ++i) {
        *tags++ = static_cast<std::byte>(value_of(in[i]).type());
        cur = put_value(cur, value_of(in[i]));
      }
      for (std::size_t i = 0; i < n_out; ++i) {
        *tags++ = static_cast<std::byte>(value_of(out[i]).type());
        cur = put_value(cur, value_of(out[i]));
      }
    };
    if (bytes <= kSlotBytes) {  // the common case: one slot, built on the stack
      Slot slot;
      fill(slot.bytes);
      return push(pr, p, &slot, 1);
    }
    fill(pr->staging[0].bytes);
    return push(pr, p, pr->staging.get(), h.n_slots);
  }

  // The named form of log_prediction(). A shape the producer's ShapeMemo knows is logged
  // in the schema form; anything else goes to log_fields() with its names. Kept small:
  // the general path lives out of line.
  [[gnu::always_inline]] LogResult log_named(const Field* in, std::size_t n_in, const Field* out,
                                             std::size_t n_out, Priority p) noexcept {
    ProducerRegistry::prefetch_queue_state(static_cast<std::size_t>(p));
    if (closed_.load(std::memory_order_relaxed)) return reject(hot_.closed, LogResult::Closed);
    Producer* pr = local_producer();
    if (pr != nullptr) {
      ShapeMemo::Hit shape = pr->shapes.find(in, n_in, out, n_out);
      if (shape.schema_id == 0 && pr->shapes.learning()) {
        shape = learn_shape(*pr, in, n_in, out, n_out);
      }
      if (shape.schema_id != 0) {
        return log_schema_form(shape.schema_id, in, n_in, out, n_out, p, pr, shape.names_bytes);
      }
    }
    return log_fields(read_clock(), RecordKind::Prediction, {}, in, n_in, out, n_out, p, pr);
  }

  LogResult log_event(std::string_view name, const Field* fields, std::size_t n,
                      Priority p) noexcept {
    return log_fields(read_clock(), RecordKind::Event, name, fields, n, nullptr, 0, p, nullptr);
  }

  // Events, and named-form predictions of shapes not remembered: names travel with the
  // values. `pr`: the caller's producer if it has one, else nullptr (looked up here).
  [[gnu::noinline]] LogResult log_fields(std::uint64_t now, RecordKind kind, std::string_view name,
                                         const Field* in, std::size_t n_in, const Field* out,
                                         std::size_t n_out, Priority p, Producer* pr) noexcept {
    if (closed_.load(std::memory_order_relaxed)) return reject(hot_.closed, LogResult::Closed);
    if (n_in > 255 || n_out > 255 || name.size() > 255)
      return reject(hot_.invalid, LogResult::Invalid);
    std::size_t bytes = kSlotHeaderBytes + name.size();
    std::size_t name_bits = 0;  // the OR of the names' sizes: > 255 iff one of them is
    for (std::size_t i = 0; i < n_in; ++i) {
      bytes += field_size(in[i]);
      name_bits |= in[i].name.size();
    }
    for (std::size_t i = 0; i < n_out; ++i) {
      bytes += field_size(out[i]);
      name_bits |= out[i].name.size();
    }
    if (name_bits > 255) return reject(hot_.invalid, LogResult::Invalid);
    if (bytes > max_record_bytes_) return reject(hot_.too_large, LogResult::TooLarge);
    if (pr == nullptr && (pr = local_producer()) == nullptr) {
      return reject(hot_.invalid, LogResult::Invalid);
    }

    const SlotHeader h{now,
                       0,
                       static_cast<std::uint16_t>(slots_for(bytes)),
                       kind,
                       static_cast<std::uint8_t>(n_in),
                       static_cast<std::uint8_t>(n_out),
                       static_cast<std::uint8_t>(name.size())};
    auto fill = [&](std::byte* dst) noexcept {
      write_slot_header(dst, h);
      std::byte* cur = dst + kSlotHeaderBytes;
      copy_bytes(cur, name.data(), name.size());
      cur += name.size();
      for (std::size_t i = 0; i < n_in; ++i) cur = put_field(cur, in[i]);
      for (std::size_t i = 0; i < n_out; ++i) cur = put_field(cur, out[i]);
    };
    if (bytes <= kSlotBytes) {
      Slot slot;
      fill(slot.bytes);
      return push(pr, p, &slot, 1);
    }
    fill(pr->staging[0].bytes);
    return push(pr, p, pr->staging.get(), h.n_slots);
  }

  // Registers the shape of a named-form call as an implicit schema and remembers it in the
  // producer's memo (see shape_memo.hpp). Returns the hit, or an empty one to log this call with
  // its names. Runs at most ShapeMemo::kShapes times per thread.
  [[gnu::cold, gnu::noinline]] ShapeMemo::Hit learn_shape(Producer& pr, const Field* in,
                                                          std::size_t n_in, const Field* out,
                                                          std::size_t n_out) noexcept {
    if (!ShapeMemo::eligible(in, n_in, out, n_out)) return {};
    std::uint32_t id = 0;
    try {
      SchemaDef def;
      for (std::size_t i = 0; i < n_in; ++i) def.inputs.emplace_back(in[i].name);
      for (std::size_t i = 0; i < n_out; ++i) def.outputs.emplace_back(out[i].name);
      id = schemas_.find_or_add_implicit(std::move(def));
    } catch (...) {  // out of memory: this call keeps its names
      return {};
    }
    if (id == 0) {
      pr.shapes.stop_learning();  // the client's implicit schemas are used up
      return {};
    }
    return pr.shapes.remember(static_cast<std::uint16_t>(id), in, n_in, out, n_out);
  }

  // ---- The rest -----------------------------------------------------------------------

  // Returns the new schema's id.
  std::uint32_t add_schema(std::span<const std::string_view> inputs,
                           std::span<const std::string_view> outputs) {
    SchemaDef def;
    def.inputs.assign(inputs.begin(), inputs.end());
    def.outputs.assign(outputs.begin(), outputs.end());
    validate_schema_names(def.inputs, def.outputs);
    const std::uint32_t id = schemas_.add(std::move(def));
    if (id == 0) {
      throw Error(
          "schema: the client's schema table is full (65535 ids, which include up to 1024 "
          "implicit ones for named-form shapes)");
    }
    return id;
  }

  bool flush(std::optional<std::chrono::steady_clock::time_point> deadline) {
    return writer_->flush(deadline);
  }

  OfflineStatus status() const {
    OfflineStatus s;
    // Read in the order records move (queues, then the writer's batches, then the
    // journal), so that a record moving on during the reads is met again further along:
    // counted once or, for an instant, twice; read the other way round, a whole batch
    // committed between the reads would be counted nowhere.
    for (std::size_t p = 0; p < 4; ++p) {
      s.in_memory += queues_[p].size_approx();  // slots; most records take one
    }
    // A dequeue in progress has taken records the queues no longer show and in_batches
    // does not show yet; it lasts microseconds.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    wait_out_dequeue(writer_counters_);
    s.in_memory += writer_counters_.in_batches.load(std::memory_order_acquire);
    const JournalCounts c = journal_->counts();
    for (std::size_t p = 0; p < 4; ++p) {
      s.queue_size_by_priority[p] = c.entries[p];
      s.queue_size += c.entries[p];
      s.dropped.queue_full[p] = hot_.queue_full[p].load(std::memory_order_relaxed);
    }
    s.queue_size += s.in_memory;
    s.failed_count = c.entries[static_cast<std::size_t>(RecordSet::Failed)];
    s.committed_total = writer_counters_.committed.load(std::memory_order_relaxed);
    s.commits_total = writer_counters_.commits.load(std::memory_order_relaxed);
    s.device_sync_failures = writer_counters_.device_sync_failures.load(std::memory_order_relaxed);
    s.next_seq = c.next_seq;
    s.journal_id = journal_->journal_id();
    s.journal_map_bytes = c.map_bytes;
    s.journal_used_bytes = c.used_bytes;
    s.dropped.too_large = hot_.too_large.load(std::memory_order_relaxed);
    s.dropped.invalid = hot_.invalid.load(std::memory_order_relaxed) +
                        writer_counters_.malformed.load(std::memory_order_relaxed);
    s.dropped.closed = hot_.closed.load(std::memory_order_relaxed);
    s.dropped.journal_full = writer_counters_.journal_full.load(std::memory_order_relaxed);
    s.dropped.journal_error = writer_counters_.journal_error.load(std::memory_order_relaxed);
    s.last_journal_error = writer_counters_.journal_error_text();
    s.dropped.evicted = c.evicted;
    s.dropped.cleaned_up = c.cleaned_up;
    if (uploader_) {
      const UploaderStatus u = uploader_->status();
      s.last_sync_time = u.last_sync_time;
      s.synced_total = u.synced_total;
      s.failed_total = u.failed_total;
      s.possibly_duplicated = u.duplicates_possible;
      s.current_backoff = u.current_backoff;
      s.consecutive_failures = u.consecutive_failures;
      s.last_error = u.last_error;
      s.connection_state = u.connection_state;
    } else {
      s.connection_state = "disabled";
    }
    return s;
  }

  std::size_t cleanup(std::chrono::duration<double> older_than) {
    if (!(older_than.count() >= 0)) {
      throw Error("cleanup_offline_queue: the age must not be negative (or NaN)");
    }
    const double now_ns = static_cast<double>(realtime_ns());
    const double cutoff = now_ns - older_than.count() * 1e9;
    const std::int64_t cutoff_ns =
        cutoff <= -9.2e18 ? INT64_MIN : static_cast<std::int64_t>(cutoff);
    writer_->flush(std::nullopt);  // records still in memory are judged too
    return writer_->call([this, cutoff_ns] { return journal_->cleanup_before(cutoff_ns); });
  }

 private:
  static const Value& value_of(const Value& v) noexcept { return v; }
  static const Value& value_of(const Field& f) noexcept { return f.value; }

  [[gnu::always_inline]] std::uint64_t read_clock() const noexcept {
    if (clock_ == HotClock::Cached) return cached_clock_.read();
    return hot_timestamp(clock_ == HotClock::Tsc);
  }

  // The calling thread's producer: its thread-local cache, else the registry's slow path.
  [[gnu::always_inline]] Producer* local_producer() noexcept {
    if (Producer* p = ProducerRegistry::cached(producers_id_)) [[likely]] {
      return p;
    }
    return producers_.local_slow();
  }

  // Rare paths live out of line, so the accepted path spans fewer cache lines.
  [[gnu::cold, gnu::noinline]] LogResult reject(std::atomic<std::uint64_t>& counter,
                                                LogResult r) noexcept {
    bump(counter);
    return r;
  }

  [[gnu::always_inline]] LogResult push(Producer* pr, Priority p, const Slot* slots,
                                        std::size_t n) noexcept {
    const auto pi = static_cast<std::size_t>(p) & 3;
    SlotQueue& q = queues_[pi];
    ProducerToken& token = pr->token(pi);
    const bool ok = n == 1 ? q.try_enqueue(token, slots[0]) : q.try_enqueue_bulk(token, slots, n);
    if (__builtin_expect(ok, 1)) return LogResult::Ok;
    return push_full(pr, pi, slots, n);
  }

  // The queue was full: drop and count, or block, as the priority's policy says.
  [[gnu::cold, gnu::noinline]] LogResult push_full(Producer* pr, std::size_t pi, const Slot* slots,
                                                   std::size_t n) noexcept {
    if (full_policy_[pi] == FullPolicy::Drop) {
      return reject(hot_.queue_full[pi], LogResult::QueueFull);
    }
    SlotQueue& q = queues_[pi];
    ProducerToken& token = pr->token(pi);
    // Block. A writer keeping up frees slots within a pass: spin briefly, then yield the
    // core. A writer that is stalled (a slow device flush, a journal locked by another
    // process) may take seconds: then sleep, 50 us doubling to 1 ms, so the waiting
    // thread leaves the core to the writer instead of burning it, and still sees free
    // slots within about a millisecond.
    timespec nap{0, 50'000};
    for (unsigned round = 0;; ++round) {
      if (closed_.load(std::memory_order_relaxed)) return reject(hot_.closed, LogResult::Closed);
      if (round < 128) {
        cpu_relax();
      } else if (round < 128 + 64) {
        sched_yield();
      } else {
        nanosleep(&nap, nullptr);
        nap.tv_nsec = std::min<long>(nap.tv_nsec * 2, 1'000'000);
      }
      if (n == 1 ? q.try_enqueue(token, slots[0]) : q.try_enqueue_bulk(token, slots, n)) {
        return LogResult::Ok;
      }
    }
  }

  // Where read_clock() takes a record's time: decided once, read from the hot line.
  enum class HotClock : std::uint8_t { Tsc, Realtime, Cached };
  // Decides the TSC question first in any case: the writer converts TSC ticks even when
  // the hot path reads a cached clock.
  static HotClock hot_clock_for(ClockSource source) {
    const bool tsc = init_hot_clock();
    if (source == ClockSource::Cached) return HotClock::Cached;
    return tsc ? HotClock::Tsc : HotClock::Realtime;
  }

  // What every log call reads, together on one cache line, ahead of everything else.
  // A call after an idle pause finds these in one line instead of several: that first
  // call is what a burst of logging pays most for (see bench/results).
  std::atomic<bool> closed_{false};
  const HotClock clock_;
  const std::uint64_t id_;
  const std::uint64_t producers_id_;  // producers_'s id, for its thread-local cache
  const std::size_t max_record_bytes_;
  const std::array<FullPolicy, kPriorityCount> full_policy_;
  const std::size_t max_record_slots_;
  const Options options_;
  HotPathCounters hot_;
  CachedClock cached_clock_;  // ClockSource::Cached only; a cache line of its own
  WriterCounters writer_counters_;
  // Declaration order is destruction order reversed: the writer stops first, then the
  // journal closes, then producer tokens die, and only then the queues they point into.
  QueueSet queues_;
  SchemaTable schemas_;
  ProducerRegistry producers_;
  MemoryDir memory_dir_;  // memory-only mode; removed after the journal closes
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Writer> writer_;
  std::unique_ptr<Uploader> uploader_;
  // Destroyed first: a crash flush can still cover the writer while ~Impl stops it.
  CrashFlushRegistration crash_flush_;
};

// Client's constructor counts on this: the Impl is the arena's first object, in its first
// huge page, beside the producers the hot path reaches from it.
static_assert(sizeof(Client::Impl) <= HotArena::kSmallMax);

// ---- Client: thin forwarding ------------------------------------------------------------

Client::Client(Options options) {
  validate_options(options);
  // Room after the arena's first huge page for the four queues' block pools.
  HotArena* arena = HotArena::create(4 * slot_queue_pool_bytes(options.max_producer_threads));
  const HotArena::Scope scope(arena);
  impl_.reset(new Impl(std::move(options), arena));
}

Client::~Client() = default;

LogResult Client::log_prediction(std::initializer_list<Field> inputs,
                                 std::initializer_list<Field> output, Priority priority) noexcept {
  return impl_->log_named(inputs.begin(), inputs.size(), output.begin(), output.size(), priority);
}

LogResult Client::log_prediction(const Schema& schema, std::initializer_list<Value> inputs,
                                 std::initializer_list<Value> output, Priority priority) noexcept {
  return impl_->log_values(schema.client_id_, schema.id_, schema.n_inputs_, schema.n_outputs_,
                           inputs, output, priority);
}

LogResult Client::log_event(std::string_view name, std::initializer_list<Field> fields,
                            Priority priority) noexcept {
  return impl_->log_event(name, fields.begin(), fields.size(), priority);
}

LogResult Client::log_prediction(std::span<const Field> inputs, std::span<const Field> output,
                                 Priority priority) noexcept {
  return impl_->log_named(inputs.data(), inputs.size(), output.data(), output.size(), priority);
}

LogResult Client::log_prediction(const Schema& schema, std::span<const Value> inputs,
                                 std::span<const Value> output, Priority priority) noexcept {
  return impl_->log_values(schema.client_id_, schema.id_, schema.n_inputs_, schema.n_outputs_,
                           inputs, output, priority);
}

LogResult Client::log_event(std::string_view name, std::span<const Field> fields,
                            Priority priority) noexcept {
  return impl_->log_event(name, fields.data(), fields.size(), priority);
}

Schema Client::schema(std::initializer_list<std::string_view> inputs,
                      std::initializer_list<std::string_view> outputs) {
  return schema_of(std::span<const std::string_view>(inputs.begin(), inputs.size()),
                   std::span<const std::string_view>(outputs.begin(), outputs.size()));
}

Schema Client::schema_of(std::span<const std::string_view> inputs,
                         std::span<const std::string_view> outputs) {
  Schema s;
  s.client_id_ = impl_->id();
  s.n_inputs_ = static_cast<std::uint16_t>(inputs.size());
  s.n_outputs_ = static_cast<std::uint16_t>(outputs.size());
  s.id_ = impl_->add_schema(inputs, outputs);
  return s;
}

void Client::flush() {
  impl_->flush(std::nullopt);
}

bool Client::flush_for(std::chrono::milliseconds timeout) {
  timeout = std::max(timeout, std::chrono::milliseconds::zero());  // a past deadline: now
  const auto now = std::chrono::steady_clock::now();
  // now + timeout overflows for a timeout of centuries (milliseconds::max() is a common
  // way to say "no limit"), and would wrap to a deadline already past: wait without one.
  const auto room = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::time_point::max() - now);
  if (timeout >= room) return impl_->flush(std::nullopt);
  return impl_->flush(now + timeout);
}

void Client::install_crash_flush(std::chrono::milliseconds budget) {
  detail::install_crash_flush(budget);
}

OfflineStatus Client::get_offline_status() const {
  return impl_->status();
}

SyncResult Client::sync_offline_queue() {
  return impl_->sync();
}

std::size_t Client::retry_failed(std::optional<Priority> only) {
  return impl_->retry_failed(only);
}

std::size_t Client::cleanup_older_than(std::chrono::duration<double> older_than) {
  return impl_->cleanup(older_than);
}

}  // namespace flightlog
