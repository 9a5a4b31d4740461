// flightlog-bench-throughput: durable records per second, from the first call until
// flush() returns, for W1 (all NORMAL) and W2 (5% CRITICAL, 15% HIGH, 60% NORMAL, 20% LOW),
// with 1 and 4 producer threads, in every Durability mode. Method:
// bench/method.md.
//
// Contestants in the same run, storing byte-identical records (pre-encoded with the
// library's own RecordEncoder, outside the timed region):
//   lmdb    the journal's ceiling: raw LMDB, one write transaction per 1,024 records,
//           MDB_APPEND, big-endian 8-byte sequence keys, one named DB per priority, the
//           env flags of the durability mode (Full 0, NoMetaSync MDB_NOMETASYNC,
//           Periodic/None MDB_NOSYNC; Periodic also syncs once at the end, as
//           flightlog's flush() does in that mode). The map is sized up front.
//   sqlite  the SDK's original design: SQLite in WAL mode, one INSERT per record in
//           autocommit (one transaction per record), synchronous=FULL for Full and
//           NORMAL for the other modes (WAL+NORMAL is SQLite's documented "durable
//           except for the last transactions on power loss" setting, the closest match
//           to NoMetaSync/Periodic; OFF would also risk corruption). One prepared
//           statement, no secondary index: SQLite's best case.
// flightlog runs with FullPolicy::Block for every priority, so nothing may be dropped;
// the run checks that and warns otherwise.
#include <lmdb.h>
#include <sqlite3.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common.hpp"
#include "flightlog/flightlog.hpp"
#include "format/record.hpp"

namespace fl = flightlog;
namespace fd = flightlog::detail;
using namespace flightlog::bench;

namespace {

using Clock = std::chrono::steady_clock;

struct Workload {
  std::string name;
  std::vector<fl::Priority> priorities;  // one per record
};

// ---- Pre-encoded records for the raw contestants --------------------------------------

struct EncodedRecord {
  fl::Priority priority;
  std::uint32_t offset;  // into EncodedRecords::arena
  std::uint32_t size;
};

struct EncodedRecords {
  std::vector<std::byte> arena;
  std::vector<EncodedRecord> records;
};

// Encodes the first n records of `w` exactly as flightlog's writer encodes a schema-form
// W1 record (same names, types, values; only the timestamp differs).
EncodedRecords encode(const Workload& w, std::size_t n) {
  EncodedRecords out;
  out.arena.reserve(n * 128);
  out.records.reserve(n);
  static const char* const kNames[5] = {"feature1", "feature2", "feature3", "feature4",
                                        "prediction"};
  const auto ts = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  for (std::size_t i = 0; i < n; ++i) {
    const W1Values v = w1_values(i);
    const double values[5] = {v.f1, v.f2, v.f3, v.f4, v.prediction};
    fd::RecordEncoder enc(out.arena);
    enc.begin(fd::kKindPrediction, w.priorities[i], ts, {}, 4, 1);
    for (int f = 0; f < 5; ++f) {
      enc.field(kNames[f], fl::Value::Type::Double, reinterpret_cast<const std::byte*>(&values[f]),
                8);
    }
    const std::size_t offset = enc.finish();
    out.records.push_back({w.priorities[i], static_cast<std::uint32_t>(offset),
                           static_cast<std::uint32_t>(out.arena.size() - offset)});
  }
  return out;
}

// ---- flightlog -------------------------------------------------------------------------

// Returns the seconds from releasing the producers until flush() returned.
double run_flightlog(const Workload& w, std::size_t n, int producers, fl::Durability mode,
                     std::string& warning) {
  TempDir dir;
  fl::Options o;
  o.offline_dir = dir / "journal";
  o.durability = mode;
  o.full_policy.fill(fl::FullPolicy::Block);  // nothing dropped: the writer sets the pace
  o.max_producer_threads = std::max(o.max_producer_threads, static_cast<std::size_t>(producers));
  fl::Client client(o);
  const fl::Schema schema =
      client.schema({"feature1", "feature2", "feature3", "feature4"}, {"prediction"});

  StartGate gate;
  std::atomic<int> ready{0};
  std::atomic<std::uint64_t> not_ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < producers; ++t) {
    const std::size_t begin = n * static_cast<std::size_t>(t) / static_cast<std::size_t>(producers);
    const std::size_t end =
        n * static_cast<std::size_t>(t + 1) / static_cast<std::size_t>(producers);
    threads.emplace_back([&, begin, end] {
      std::uint64_t failures = 0;
      ready.fetch_add(1);
      gate.wait();
      for (std::size_t i = begin; i < end; ++i) {
        const W1Values v = w1_values(i);
        if (client.log_prediction(schema, {v.f1, v.f2, v.f3, v.f4}, {v.prediction},
                                  w.priorities[i]) != fl::LogResult::Ok) {
          ++failures;
        }
      }
      not_ok.fetch_add(failures);
    });
  }
  while (ready.load() < producers) std::this_thread::yield();
  const auto t0 = Clock::now();
  gate.open();
  for (auto& t : threads) t.join();
  client.flush();
  const auto t1 = Clock::now();

  const fl::OfflineStatus s = client.get_offline_status();
  std::uint64_t dropped = s.dropped.too_large + s.dropped.invalid + s.dropped.closed +
                          s.dropped.journal_full + s.dropped.journal_error;
  for (auto d : s.dropped.queue_full) dropped += d;
  for (auto d : s.dropped.evicted) dropped += d;
  if (not_ok.load() != 0 || dropped != 0 || s.committed_total != n) {
    warning = std::to_string(not_ok.load()) + " calls not Ok, " + std::to_string(dropped) +
              " dropped, committed " + std::to_string(s.committed_total) + " of " +
              std::to_string(n);
  }
  return std::chrono::duration<double>(t1 - t0).count();
}

// ---- Raw LMDB --------------------------------------------------------------------------

void check_lmdb(int rc, const char* what) {
  if (rc != 0) throw std::runtime_error(std::string(what) + ": " + mdb_strerror(rc));
}

// `records_per_txn`: 1,024 for the method's ceiling ("lmdb"); the "lmdb+batch" ablation
// commits as large a batch as flightlog's writer at most does (Options::batch_max_records),
// the ceiling for a writer that batches like flightlog's.
double run_lmdb(const EncodedRecords& recs, std::size_t n, fl::Durability mode,
                std::size_t records_per_txn) {
  TempDir dir;
  MDB_env* env = nullptr;
  check_lmdb(mdb_env_create(&env), "mdb_env_create");
  mdb_env_set_maxdbs(env, 8);
  // Sized up front (flightlog starts at 64 MiB and doubles): the ceiling pays no growth.
  mdb_env_set_mapsize(env, std::max<std::size_t>(recs.arena.size() * 4, std::size_t{256} << 20));
  unsigned flags = MDB_NOTLS;  // as the journal opens it
  if (mode == fl::Durability::NoMetaSync) flags |= MDB_NOMETASYNC;
  if (mode == fl::Durability::Periodic || mode == fl::Durability::None) flags |= MDB_NOSYNC;
  check_lmdb(mdb_env_open(env, dir.path().c_str(), flags, 0600), "mdb_env_open");

  std::array<MDB_dbi, 4> dbi{};
  MDB_txn* txn = nullptr;
  check_lmdb(mdb_txn_begin(env, nullptr, 0, &txn), "mdb_txn_begin");
  const char* names[4] = {"critical", "high", "normal", "low"};
  for (std::size_t p = 0; p < 4; ++p) {
    check_lmdb(mdb_dbi_open(txn, names[p], MDB_CREATE, &dbi[p]), "mdb_dbi_open");
  }
  check_lmdb(mdb_txn_commit(txn), "mdb_txn_commit");

  const auto t0 = Clock::now();
  std::uint64_t seq = 1;
  for (std::size_t first = 0; first < n; first += records_per_txn) {
    const std::size_t last = std::min(first + records_per_txn, n);
    check_lmdb(mdb_txn_begin(env, nullptr, 0, &txn), "mdb_txn_begin");
    for (std::size_t i = first; i < last; ++i, ++seq) {
      unsigned char key[8];
      for (int b = 0; b < 8; ++b) key[b] = static_cast<unsigned char>(seq >> (56 - 8 * b));
      const EncodedRecord& r = recs.records[i];
      MDB_val k{8, key};
      MDB_val v{r.size, const_cast<std::byte*>(recs.arena.data() + r.offset)};
      check_lmdb(mdb_put(txn, dbi[static_cast<std::size_t>(r.priority)], &k, &v, MDB_APPEND),
                 "mdb_put");
    }
    check_lmdb(mdb_txn_commit(txn), "mdb_txn_commit");
  }
  if (mode == fl::Durability::Periodic) check_lmdb(mdb_env_sync(env, 1), "mdb_env_sync");
  const auto t1 = Clock::now();
  mdb_env_close(env);
  return std::chrono::duration<double>(t1 - t0).count();
}

// ---- SQLite ----------------------------------------------------------------------------

void exec_sql(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = std::string(sql) + ": " + (err ? err : "?");
    sqlite3_free(err);
    throw std::runtime_error(msg);
  }
}

double run_sqlite(const EncodedRecords& recs, std::size_t n, fl::Durability mode) {
  TempDir dir;
  sqlite3* db = nullptr;
  if (sqlite3_open((dir / "queue.db").c_str(), &db) != SQLITE_OK) {
    throw std::runtime_error("sqlite3_open failed");
  }
  exec_sql(db, "PRAGMA journal_mode=WAL");
  exec_sql(db,
           mode == fl::Durability::Full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  exec_sql(db,
           "CREATE TABLE queue(seq INTEGER PRIMARY KEY, priority INTEGER NOT NULL, record BLOB "
           "NOT NULL)");
  sqlite3_stmt* insert = nullptr;
  if (sqlite3_prepare_v2(db, "INSERT INTO queue(seq, priority, record) VALUES(?, ?, ?)", -1,
                         &insert, nullptr) != SQLITE_OK) {
    throw std::runtime_error(std::string("prepare: ") + sqlite3_errmsg(db));
  }
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i) {
    const EncodedRecord& r = recs.records[i];
    sqlite3_bind_int64(insert, 1, static_cast<sqlite3_int64>(i + 1));
    sqlite3_bind_int(insert, 2, static_cast<int>(r.priority));
    sqlite3_bind_blob(insert, 3, recs.arena.data() + r.offset, static_cast<int>(r.size),
                      SQLITE_STATIC);
    if (sqlite3_step(insert) != SQLITE_DONE) {
      throw std::runtime_error(std::string("insert: ") + sqlite3_errmsg(db));
    }
    sqlite3_reset(insert);
  }
  const auto t1 = Clock::now();
  sqlite3_finalize(insert);
  sqlite3_close(db);
  return std::chrono::duration<double>(t1 - t0).count();
}

// ---- Results ---------------------------------------------------------------------------

struct Sample {
  std::string contestant;  // flightlog, lmdb, sqlite
  std::string workload;
  int producers;
  fl::Durability mode;
  std::size_t records;
  int rep;
  double seconds;
  std::string warning;
  double rate() const { return static_cast<double>(records) / seconds; }
};

using Key = std::tuple<std::string, std::string, int, fl::Durability>;

struct Summary {
  double median = 0, min = 0, max = 0;
  std::size_t records = 0;
  int runs = 0;
};

std::map<Key, Summary> summarise(const std::vector<Sample>& samples) {
  std::map<Key, std::vector<double>> rates;
  std::map<Key, std::size_t> records;
  for (const auto& s : samples) {
    const Key k{s.contestant, s.workload, s.producers, s.mode};
    rates[k].push_back(s.rate());
    records[k] = s.records;
  }
  std::map<Key, Summary> out;
  for (auto& [k, r] : rates) {
    out[k] = Summary{median(r), *std::min_element(r.begin(), r.end()),
                     *std::max_element(r.begin(), r.end()), records[k], static_cast<int>(r.size())};
  }
  return out;
}

std::string rate_text(double r) {
  if (r >= 1e6) return fixed(r / 1e6, 2) + " M";
  if (r >= 1e3) return fixed(r / 1e3, 1) + " k";
  return fixed(r, 0);
}

struct Counts {
  std::size_t records;         // flightlog and raw LMDB, Periodic and None
  std::size_t records_synced;  // flightlog and raw LMDB, Full and NoMetaSync (a device
                               // flush per commit makes these modes slower)
  std::size_t sqlite_full;
  std::size_t sqlite_other;
  int reps;
};

void write_outputs(const std::filesystem::path& out, const std::vector<Sample>& samples,
                   const Counts& counts, const std::vector<int>& producer_counts) {
  {
    std::ofstream csv(out / "throughput.csv");
    csv << "contestant,workload,producers,durability,records,rep,seconds,records_per_s,warning\n";
    for (const auto& s : samples) {
      csv << s.contestant << ',' << s.workload << ',' << s.producers << ','
          << durability_name(s.mode) << ',' << s.records << ',' << s.rep << ','
          << fixed(s.seconds, 6) << ',' << fixed(s.rate(), 0) << ",\"" << s.warning << "\"\n";
    }
  }
  const auto sum = summarise(samples);
  {
    std::ofstream csv(out / "throughput-summary.csv");
    csv << "contestant,workload,producers,durability,records,runs,median_records_per_s,"
           "min_records_per_s,max_records_per_s\n";
    for (const auto& [k, s] : sum) {
      csv << std::get<0>(k) << ',' << std::get<1>(k) << ',' << std::get<2>(k) << ','
          << durability_name(std::get<3>(k)) << ',' << s.records << ',' << s.runs << ','
          << fixed(s.median, 0) << ',' << fixed(s.min, 0) << ',' << fixed(s.max, 0) << '\n';
    }
  }

  auto get = [&](const std::string& c, const std::string& w, int p,
                 fl::Durability m) -> const Summary* {
    auto it = sum.find(Key{c, w, p, m});
    return it == sum.end() ? nullptr : &it->second;
  };
  auto cell = [](const Summary* s) {
    return s ? rate_text(s->median) + " (" + rate_text(s->min) + "-" + rate_text(s->max) + ")"
             : std::string("-");
  };
  auto ratio = [](const Summary* a, const Summary* b) {
    return a && b ? fixed(a->median / b->median, 2) + "x" : std::string("-");
  };

  std::ofstream md(out / "throughput.md");
  md << "## Durable throughput (records/s from the first call until flush() returns)\n\n"
     << "Median of " << counts.reps << " runs (min-max in parentheses). Records per run: "
     << "flightlog and raw LMDB " << counts.records_synced << " in Full and NoMetaSync, "
     << counts.records << " in Periodic and None; SQLite " << counts.sqlite_full << " (Full) and "
     << counts.sqlite_other
     << " (other modes), since it commits every record. flightlog: schema form, default "
     << "Options except `durability` and `FullPolicy::Block` for every priority. raw LMDB: "
     << "one txn per 1,024 records, MDB_APPEND, the same encoded bytes, env flags of the mode "
     << "(Full 0, NoMetaSync MDB_NOMETASYNC, Periodic/None MDB_NOSYNC, Periodic with one "
     << "final mdb_env_sync), map sized up front; single writer, so one figure serves both "
     << "producer counts. SQLite: WAL, one autocommit INSERT per record, synchronous=FULL for "
     << "Full, NORMAL otherwise; single connection. Journals live in $TMPDIR on the "
     << "machine's disk.\n\n";
  // The ablation's columns, where it ran: raw LMDB committing batches as large as
  // flightlog's writer may (the method's ceiling commits every 1,024 records, so in the
  // modes that flush each commit it pays for more flushes than flightlog does).
  const bool batched = std::any_of(samples.begin(), samples.end(),
                                   [](const Sample& s) { return s.contestant == "lmdb+batch"; });
  if (batched) {
    md << "raw LMDB batched (an ablation, not a target): the same as raw LMDB with "
       << fl::Options{}.batch_max_records
       << " records per txn (Options::batch_max_records, the most flightlog's writer commits "
       << "at once).\n\n";
  }
  for (const std::string w : {"W1", "W2"}) {
    md << "### " << w
       << (w == "W1" ? " (all NORMAL)" : " (5% CRITICAL, 15% HIGH, 60% NORMAL, 20% LOW)")
       << "\n\n| durability |";
    for (int p : producer_counts)
      md << " flightlog, " << p << " producer" << (p == 1 ? "" : "s") << " |";
    md << " raw LMDB | SQLite |";
    for (int p : producer_counts) md << " flightlog " << p << "p / LMDB |";
    for (int p : producer_counts) md << " flightlog " << p << "p / SQLite |";
    if (batched) {
      md << " raw LMDB batched |";
      for (int p : producer_counts) md << " flightlog " << p << "p / LMDB batched |";
    }
    md << "\n|---|";
    const std::size_t columns = producer_counts.size() * (batched ? 4 : 3) + (batched ? 3 : 2);
    for (std::size_t i = 0; i < columns; ++i) md << "---:|";
    md << "\n";
    for (const auto& [m, name] : kDurabilityModes) {
      const Summary* lmdb = get("lmdb", w, 1, m);
      const Summary* sqlite = get("sqlite", w, 1, m);
      if (!lmdb && !sqlite && !get("flightlog", w, producer_counts.front(), m)) continue;
      md << "| " << name << (m == fl::Options{}.durability ? " (default)" : "") << " |";
      for (int p : producer_counts) md << ' ' << cell(get("flightlog", w, p, m)) << " |";
      md << ' ' << cell(lmdb) << " | " << cell(sqlite) << " |";
      for (int p : producer_counts) md << ' ' << ratio(get("flightlog", w, p, m), lmdb) << " |";
      for (int p : producer_counts) md << ' ' << ratio(get("flightlog", w, p, m), sqlite) << " |";
      if (batched) {
        const Summary* lmdb_batched = get("lmdb+batch", w, 1, m);
        md << ' ' << cell(lmdb_batched) << " |";
        for (int p : producer_counts) {
          md << ' ' << ratio(get("flightlog", w, p, m), lmdb_batched) << " |";
        }
      }
      md << "\n";
    }
    md << "\n";
  }
  for (const auto& s : samples) {
    if (!s.warning.empty()) {
      md << "**Warning:** " << s.contestant << ' ' << s.workload << ' ' << s.producers << "p "
         << durability_name(s.mode) << " run " << s.rep << ": " << s.warning << "\n\n";
    }
  }

  // Targets: the default durability mode, 1 producer, W1.
  const fl::Durability def = fl::Options{}.durability;
  const Summary* f = get("flightlog", "W1", 1, def);
  const Summary* l = get("lmdb", "W1", 1, def);
  const Summary* q = get("sqlite", "W1", 1, def);
  std::vector<Target> targets;
  const std::string mode = std::string(" (W1; 1 producer; ") + durability_name(def) + ")";
  if (f && l)
    targets.push_back(
        {"throughput: flightlog / raw LMDB" + mode, f->median / l->median, 0.8, false});
  if (f && q)
    targets.push_back({"throughput: flightlog / SQLite" + mode, f->median / q->median, 300, false});
  if (const Summary* b = get("lmdb+batch", "W1", 1, def); f && b) {
    targets.push_back(
        {"ablation: flightlog / raw LMDB batched" + mode, f->median / b->median, 0, false, true});
  }
  write_targets(out / "throughput-targets.csv", targets);
  print_targets(targets);
}

bool wanted(const std::vector<std::string>& list, const std::string& name) {
  return std::find(list.begin(), list.end(), name) != list.end();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Durable throughput of flightlog against raw LMDB and SQLite (W1, W2)."};
  std::string out_dir = ".";
  Counts counts{1'000'000, 250'000, 500, 20'000, 3};
  std::vector<int> producer_counts{1, 4};
  std::vector<std::string> modes{"Full", "NoMetaSync", "Periodic", "None"};
  std::vector<std::string> contestants{"flightlog", "lmdb", "sqlite"};
  app.add_option("--out", out_dir, "Directory for throughput*.csv and throughput.md");
  app.add_option("--records", counts.records,
                 "Records per run, flightlog and raw LMDB, Periodic and None");
  app.add_option("--records-synced", counts.records_synced,
                 "Records per run, flightlog and raw LMDB, Full and NoMetaSync");
  app.add_option("--sqlite-records-full", counts.sqlite_full, "Records per SQLite run, Full");
  app.add_option("--sqlite-records", counts.sqlite_other, "Records per SQLite run, other modes");
  app.add_option("--reps", counts.reps, "Runs of each measurement (the median is reported)");
  app.add_option("--producers", producer_counts, "flightlog producer thread counts")
      ->delimiter(',');
  app.add_option("--modes", modes, "Durability modes")->delimiter(',');
  app.add_option("--contestants", contestants,
                 "Any of flightlog,lmdb,sqlite, and lmdb+batch (an ablation: raw LMDB committing "
                 "Options::batch_max_records records per txn; not run unless named)")
      ->delimiter(',');
  CLI11_PARSE(app, argc, argv);

  // The workloads and their pre-encoded bytes, built once, outside every timed region.
  const std::size_t n_max =
      std::max({counts.records, counts.records_synced, counts.sqlite_full, counts.sqlite_other});
  const std::vector<Workload> workloads{
      {"W1", std::vector<fl::Priority>(n_max, fl::Priority::Normal)}, {"W2", w2_priorities(n_max)}};
  // Only the raw contestants need pre-encoded bytes (and encoding takes a while).
  std::vector<EncodedRecords> encoded(workloads.size());
  if (wanted(contestants, "lmdb") || wanted(contestants, "lmdb+batch") ||
      wanted(contestants, "sqlite")) {
    for (std::size_t wi = 0; wi < workloads.size(); ++wi)
      encoded[wi] = encode(workloads[wi], n_max);
  }

  std::vector<Sample> samples;
  auto record = [&](Sample s) {
    std::cout << "  run " << s.rep << ' ' << durability_name(s.mode) << ' ' << s.workload << ' '
              << s.contestant << ' ' << s.producers << "p: " << rate_text(s.rate())
              << " records/s (" << fixed(s.seconds, 2) << " s)" << std::endl;
    if (!s.warning.empty()) std::cerr << "WARNING: " << s.warning << std::endl;
    samples.push_back(std::move(s));
  };
  // Repetitions outermost, so slow drifts of a shared machine touch every contestant.
  for (int rep = 1; rep <= counts.reps; ++rep) {
    for (const auto& [mode, name] : kDurabilityModes) {
      if (!wanted(modes, name)) continue;
      const bool synced = mode == fl::Durability::Full || mode == fl::Durability::NoMetaSync;
      const std::size_t n = synced ? counts.records_synced : counts.records;
      for (std::size_t wi = 0; wi < workloads.size(); ++wi) {
        const Workload& w = workloads[wi];
        if (wanted(contestants, "lmdb")) {
          record({"lmdb", w.name, 1, mode, n, rep, run_lmdb(encoded[wi], n, mode, 1024), ""});
        }
        if (wanted(contestants, "lmdb+batch")) {
          const std::size_t per_txn = fl::Options{}.batch_max_records;
          record(
              {"lmdb+batch", w.name, 1, mode, n, rep, run_lmdb(encoded[wi], n, mode, per_txn), ""});
        }
        if (wanted(contestants, "flightlog")) {
          for (int p : producer_counts) {
            std::string warning;
            const double secs = run_flightlog(w, n, p, mode, warning);
            record({"flightlog", w.name, p, mode, n, rep, secs, warning});
          }
        }
        if (wanted(contestants, "sqlite")) {
          const std::size_t sn =
              mode == fl::Durability::Full ? counts.sqlite_full : counts.sqlite_other;
          record({"sqlite", w.name, 1, mode, sn, rep, run_sqlite(encoded[wi], sn, mode), ""});
        }
      }
    }
  }

  const std::filesystem::path out(out_dir);
  std::filesystem::create_directories(out);
  write_outputs(out, samples, counts, producer_counts);
  return 0;
}
