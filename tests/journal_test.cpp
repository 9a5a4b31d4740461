// Tests of the LMDB journal: its files and their modes, ownership of the directory
// (in this process and from another one), refusal of unsafe or foreign directories,
// sequence resumption, map growth and its limit, eviction and cleanup.
//
// LMDB is real throughout; where a test needs a state flightlog would not create (a
// foreign environment, an unknown format version, a failed or very old record), it
// writes it with raw LMDB while no Client has the journal open.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <random>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "flightlog/flightlog.hpp"
#include "format/record.hpp"
#include "journal/journal.hpp"
#include "support/checks.hpp"
#include "support/journal_read.hpp"
#include "support/process.hpp"
#include "support/strings.hpp"
#include "support/temp_dir.hpp"
#include "support/test_options.hpp"

namespace fl = flightlog;
namespace fd = flightlog::detail;
using fl::test::cat;
using fl::test::contains;
using fl::test::error_of;
using fl::test::mode_of;
using fl::test::now_ns;
using fl::test::OwnedRecord;
using fl::test::read_journal;
using namespace std::chrono_literals;

namespace {

fd::JournalConfig config_for(const std::filesystem::path& dir) {
  fd::JournalConfig c;
  c.dir = dir;
  c.durability = fl::Durability::None;
  c.initial_map_bytes = std::size_t{1} << 20;
  return c;
}

// Logs `n` named-form records into `c`: inputs {"n": first + i}, output {"p": 0.5}.
void log_numbered(fl::Client& c, std::int64_t first, int n, fl::Priority p = fl::Priority::Normal) {
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(c.log_prediction({{"n", first + i}}, {{"p", 0.5}}, p), fl::LogResult::Ok);
  }
}

std::vector<std::int64_t> numbers_in(const std::vector<OwnedRecord>& recs, fd::RecordSet set) {
  std::vector<std::int64_t> out;
  for (const auto& r : recs) {
    if (r.set == set) out.push_back(r.inputs.at(0).i);
  }
  return out;
}

}  // namespace

// ---- Files and modes ----------------------------------------------------------------------

TEST(JournalFiles, NewJournalIsPrivate) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "nested" / "journal";  // parents are created too
  const mode_t old_umask = umask(0);            // modes must not depend on the umask
  {
    fl::Client c(fl::test::test_options(dir));
    EXPECT_EQ(c.log_event("hello", {}), fl::LogResult::Ok);
    c.flush();
  }
  umask(old_umask);
  EXPECT_EQ(mode_of(dir), 0700u);
  for (const char* f : {"data.mdb", "lock.mdb", "flightlog.lock"}) {
    EXPECT_EQ(mode_of(dir / f), 0600u) << f;
  }
}

TEST(JournalFiles, ReopenResumesTheSequenceAndNeverRepeatsIt) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  std::string journal_id;
  {
    fl::Client c(fl::test::test_options(dir));
    EXPECT_EQ(c.get_offline_status().next_seq, 1u);
    log_numbered(c, 0, 10);
    c.flush();
    const auto s = c.get_offline_status();
    EXPECT_EQ(s.next_seq, 11u);
    journal_id = s.journal_id;
    EXPECT_FALSE(journal_id.empty());
  }
  {
    fl::Client c(fl::test::test_options(dir));
    const auto s = c.get_offline_status();
    EXPECT_EQ(s.next_seq, 11u);
    EXPECT_EQ(s.journal_id, journal_id);  // the instance id survives a restart
    EXPECT_EQ(s.queue_size, 10u);
    log_numbered(c, 10, 10, fl::Priority::High);
    c.flush();
    EXPECT_EQ(c.cleanup_offline_queue(std::chrono::hours{1}), 0u);  // none is that old
  }
  {
    // Delete everything: the counter must still not go back.
    fl::Client c(fl::test::test_options(dir));
    EXPECT_EQ(c.get_offline_status().next_seq, 21u);
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(c.cleanup_offline_queue(0s), 20u);
  }
  {
    fl::Client c(fl::test::test_options(dir));
    EXPECT_EQ(c.get_offline_status().next_seq, 21u);
    log_numbered(c, 20, 1);
    c.flush();
  }
  const auto recs = read_journal(dir);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].seq, 21u);
  EXPECT_EQ(recs[0].inputs.at(0).i, 20);
}

TEST(JournalFiles, SequencesAreUniqueAcrossReopens) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  for (int round = 0; round < 5; ++round) {
    fl::Client c(fl::test::test_options(dir));
    log_numbered(c, round * 100, 7, static_cast<fl::Priority>(round % 4));
    // Half of the rounds end without flush(): the destructor must commit.
    if (round % 2 == 0) c.flush();
  }
  const auto recs = read_journal(dir);
  ASSERT_EQ(recs.size(), 35u);
  std::set<std::uint64_t> seqs;
  for (const auto& r : recs) {
    EXPECT_EQ(r.error, "");
    seqs.insert(r.seq);
  }
  EXPECT_EQ(seqs.size(), 35u);
  EXPECT_EQ(*seqs.begin(), 1u);
  EXPECT_EQ(*seqs.rbegin(), 35u);
}

// In the modes that do not flush every commit, a power loss may undo batches already
// uploaded; their seqs must not be handed out again. A run that ends without closing
// (here: _exit in a child, as after kill -9) resumes above its durable reservation; a
// clean close resumes exactly at next_seq. Full flushes every commit: no reservation.
TEST(JournalFiles, AfterACrashSequencesResumeAboveTheReservation) {
  constexpr std::uint64_t kReservation = std::uint64_t{1} << 20;
  for (const auto mode : {fl::Durability::NoMetaSync, fl::Durability::Periodic,
                          fl::Durability::None, fl::Durability::Full}) {
    SCOPED_TRACE(static_cast<int>(mode));
    fl::test::TempDir tmp;
    auto o = fl::test::test_options(tmp / "j");
    o.durability = mode;
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      int code = 0;
      try {
        fl::Client c(o);
        for (int n = 0; n < 10; ++n) {
          if (c.log_prediction({{"n", n}}, {{"p", 0.5}}) != fl::LogResult::Ok) code = 3;
        }
        c.flush();
        _exit(code);  // no destructor: the journal is not closed
      } catch (...) {
        _exit(2);
      }
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

    std::uint64_t resumed = 0;
    {
      fl::Client c(o);
      const auto st = c.get_offline_status();
      EXPECT_EQ(st.queue_size, 10u);
      resumed = st.next_seq;
      if (mode == fl::Durability::Full) {
        EXPECT_EQ(resumed, 11u);
      } else {
        EXPECT_GT(resumed, kReservation);
        EXPECT_LE(resumed, 11 + kReservation);
      }
      log_numbered(c, 10, 1);
      c.flush();
    }
    fl::Client c(o);  // after a clean close: exactly the next number
    EXPECT_EQ(c.get_offline_status().next_seq, resumed + 1);
  }
}

// ---- Ownership ------------------------------------------------------------------------------

TEST(JournalOwnership, SecondOwnerInTheSameProcessIsRefused) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  {
    auto first = fd::Journal::open_for_writing(config_for(dir));
    const std::string err = error_of([&] { fd::Journal::open_for_writing(config_for(dir)); });
    EXPECT_TRUE(contains(err, "in use")) << err;
    EXPECT_TRUE(contains(err, std::to_string(getpid()))) << err;  // names the owner
    const std::string err2 = error_of([&] { fl::Client c(fl::test::test_options(dir)); });
    EXPECT_TRUE(contains(err2, "in use")) << err2;
  }
  {
    fl::Client first(fl::test::test_options(dir));
    const std::string err = error_of([&] { fl::Client c(fl::test::test_options(dir)); });
    EXPECT_TRUE(contains(err, "in use")) << err;
    // The refused attempt must not have disturbed the owner.
    EXPECT_EQ(first.log_event("still-works", {}), fl::LogResult::Ok);
    first.flush();
    EXPECT_EQ(first.get_offline_status().queue_size, 1u);
  }
  // Released with its owner.
  fl::Client again(fl::test::test_options(dir));
  EXPECT_EQ(again.get_offline_status().queue_size, 1u);
}

TEST(JournalOwnership, OwnerInAnotherProcessIsRespected) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  int ready[2];
  int release[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(release), 0);
  // Fork while this process runs no other thread; the child then owns the journal.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(ready[0]);
    close(release[1]);
    int code = 0;
    try {
      fl::Client c(fl::test::test_options(dir));
      c.log_event("child", {});
      c.flush();
      const char ok = 'k';
      if (write(ready[1], &ok, 1) != 1) code = 3;
      char buf;
      while (read(release[0], &buf, 1) > 0) {
      }
    } catch (...) {
      code = 2;
    }
    _exit(code);
  }
  close(ready[1]);
  close(release[0]);
  char buf = 0;
  ASSERT_EQ(read(ready[0], &buf, 1), 1);
  close(ready[0]);

  const std::string err = error_of([&] { fl::Client c(fl::test::test_options(dir)); });
  EXPECT_TRUE(contains(err, "in use")) << err;
  EXPECT_TRUE(contains(err, cat("pid ", std::to_string(child)))) << err;
  const std::string err2 = error_of([&] { fd::Journal::open_for_writing(config_for(dir)); });
  EXPECT_TRUE(contains(err2, "in use")) << err2;
  // A reader needs no ownership: the child's record is visible.
  EXPECT_EQ(read_journal(dir).size(), 1u);

  close(release[1]);  // the child exits
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  fl::Client c(fl::test::test_options(dir));
  EXPECT_EQ(c.get_offline_status().queue_size, 1u);
}

TEST(JournalOwnership, ChildProcessCannotTakeAJournalThisProcessOwns) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  fl::Client owner(fl::test::test_options(dir));
  owner.log_event("parent", {});
  owner.flush();
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child only opens the journal (no threads), then reports by exit code.
    int code = 10;
    try {
      fd::Journal::open_for_writing(config_for(dir));
      code = 11;  // opened: ownership not enforced
    } catch (const fl::Error& e) {
      code = std::string(e.what()).find("in use") != std::string::npos ? 0 : 12;
    } catch (...) {
      code = 13;
    }
    _exit(code);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "11: opened, 12: other error, 13: other exception";
  // The owner is unaffected.
  EXPECT_EQ(owner.log_event("after", {}), fl::LogResult::Ok);
  owner.flush();
  EXPECT_EQ(owner.get_offline_status().queue_size, 2u);
}

// ---- Unsafe or foreign directories ------------------------------------------------------

TEST(JournalDirectory, SymbolicLinkIsRefused) {
  fl::test::TempDir tmp;
  std::filesystem::create_directory(tmp / "real");
  std::filesystem::permissions(tmp / "real", std::filesystem::perms::owner_all);
  std::filesystem::create_directory_symlink(tmp / "real", tmp / "link");
  const std::string err = error_of([&] { fl::Client c(fl::test::test_options(tmp / "link")); });
  EXPECT_TRUE(contains(err, "symbolic link")) << err;
  EXPECT_TRUE(contains(err, "offline_dir")) << err;
  EXPECT_FALSE(std::filesystem::exists(tmp / "real" / "data.mdb"));
}

// A path ending in '/' makes lstat follow a link ("link/" names the directory it points
// to): the check must look at the path without its trailing separators.
TEST(JournalDirectory, SymbolicLinkWithTrailingSlashIsRefused) {
  fl::test::TempDir tmp;
  std::filesystem::create_directory(tmp / "real");
  std::filesystem::permissions(tmp / "real", std::filesystem::perms::owner_all);
  std::filesystem::create_directory_symlink(tmp / "real", tmp / "link");
  const std::filesystem::path with_slash = cat((tmp / "link").string(), "/");
  const std::string err = error_of([&] { fl::Client c(fl::test::test_options(with_slash)); });
  EXPECT_TRUE(contains(err, "symbolic link")) << err;
  EXPECT_FALSE(std::filesystem::exists(tmp / "real" / "data.mdb"));
}

TEST(JournalDirectory, GroupOrWorldWritableDirectoryIsRefused) {
  fl::test::TempDir tmp;
  for (unsigned mode : {0777u, 0770u, 0702u, 0720u}) {
    const auto dir = tmp / cat("d", std::to_string(mode));
    std::filesystem::create_directory(dir);
    ASSERT_EQ(chmod(dir.c_str(), mode), 0);
    const std::string err = error_of([&] { fl::Client c(fl::test::test_options(dir)); });
    EXPECT_TRUE(contains(err, "writable by group or others")) << err;
    EXPECT_TRUE(contains(err, "offline_dir")) << err;
    EXPECT_FALSE(std::filesystem::exists(dir / "data.mdb"));
  }
  // 0755 is not writable by others: accepted.
  const auto ok = tmp / "readable";
  std::filesystem::create_directory(ok);
  ASSERT_EQ(chmod(ok.c_str(), 0755), 0);
  EXPECT_NO_THROW(fl::Client c(fl::test::test_options(ok)));
}

TEST(JournalDirectory, DirectoryOfAnotherUserIsRefused) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "theirs";
  std::filesystem::create_directory(dir);
  ASSERT_EQ(chmod(dir.c_str(), 0700), 0);
  if (chown(dir.c_str(), geteuid() + 4242, static_cast<gid_t>(-1)) != 0) {
    GTEST_SKIP() << "cannot give a directory away (not root)";
  }
  const std::string err = error_of([&] { fl::Client c(fl::test::test_options(dir)); });
  EXPECT_TRUE(contains(err, "belongs to another user")) << err;
  EXPECT_FALSE(std::filesystem::exists(dir / "data.mdb"));
}

TEST(JournalDirectory, EmptyPathAndNonDirectoryAreRefused) {
  fl::test::TempDir tmp;
  std::string err = error_of([&] { fd::Journal::open_for_writing(config_for("")); });
  EXPECT_TRUE(contains(err, "offline_dir")) << err;
  EXPECT_TRUE(contains(err, "empty")) << err;

  std::ofstream(tmp / "file") << "x";
  err = error_of([&] { fl::Client c(fl::test::test_options(tmp / "file")); });
  EXPECT_TRUE(contains(err, "not a directory")) << err;
  err = error_of([&] { fl::Client c(fl::test::test_options(tmp / "file" / "sub")); });
  EXPECT_TRUE(contains(err, "offline_dir")) << err;
}

TEST(JournalDirectory, DataFileThatIsNotLmdbIsRefused) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  std::filesystem::create_directory(dir);
  ASSERT_EQ(chmod(dir.c_str(), 0700), 0);
  {
    std::mt19937 rng(1);
    std::ofstream out(dir / "data.mdb", std::ios::binary);
    for (int i = 0; i < 64 * 1024; ++i) out.put(static_cast<char>(rng()));
  }
  const auto before = fl::test::read_whole_file(dir / "data.mdb");
  const std::string err = error_of([&] { fl::Client c(fl::test::test_options(dir)); });
  EXPECT_TRUE(contains(err, "not an LMDB")) << err;
  EXPECT_TRUE(contains(err, "data.mdb")) << err;
  // Nothing was written over the file.
  EXPECT_EQ(fl::test::read_whole_file(dir / "data.mdb"), before);
  const std::string err2 = error_of([&] { fd::Journal::open_read_only(dir); });
  EXPECT_TRUE(contains(err2, "not an LMDB")) << err2;
}

TEST(JournalDirectory, LmdbEnvironmentOfSomethingElseIsRefused) {
  fl::test::TempDir tmp;
  // Another program's named database.
  const auto named = tmp / "named";
  std::filesystem::create_directory(named);
  ASSERT_EQ(chmod(named.c_str(), 0700), 0);
  {
    fl::test::RawLmdb raw(named);
    raw.put("users", "alice", fl::test::as_bytes("admin"));
  }
  std::string err = error_of([&] { fl::Client c(fl::test::test_options(named)); });
  EXPECT_TRUE(contains(err, "not a flightlog journal")) << err;
  err = error_of([&] { fd::Journal::open_read_only(named); });
  EXPECT_TRUE(contains(err, "not a flightlog journal")) << err;

  // Plain keys in the main database.
  const auto plain = tmp / "plain";
  std::filesystem::create_directory(plain);
  ASSERT_EQ(chmod(plain.c_str(), 0700), 0);
  {
    fl::test::RawLmdb raw(plain);
    raw.put(nullptr, "config", fl::test::as_bytes("value"));
  }
  err = error_of([&] { fl::Client c(fl::test::test_options(plain)); });
  EXPECT_TRUE(contains(err, "not a flightlog journal")) << err;

  // Our database names but no meta: not ours either, and not silently initialised.
  const auto partial = tmp / "partial";
  std::filesystem::create_directory(partial);
  ASSERT_EQ(chmod(partial.c_str(), 0700), 0);
  {
    fl::test::RawLmdb raw(partial);
    raw.put("normal", fl::test::RawLmdb::be64(1), fl::test::as_bytes("garbage"));
  }
  err = error_of([&] { fl::Client c(fl::test::test_options(partial)); });
  EXPECT_TRUE(contains(err, "not a flightlog journal")) << err;
}

TEST(JournalDirectory, UnknownFormatVersionIsRefused) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  {
    fl::Client c(fl::test::test_options(dir));
    c.log_event("e", {});
  }
  {
    fl::test::RawLmdb raw(dir);
    const std::uint32_t v99 = 99;
    raw.put("meta", "format_version", {reinterpret_cast<const std::byte*>(&v99), 4});
  }
  std::string err = error_of([&] { fl::Client c(fl::test::test_options(dir)); });
  EXPECT_TRUE(contains(err, "format version 99")) << err;
  err = error_of([&] { fd::Journal::open_read_only(dir); });
  EXPECT_TRUE(contains(err, "99")) << err;
  // The refused open left the journal as it was.
  {
    fl::test::RawLmdb raw(dir);
    const std::uint32_t v1 = fd::kJournalFormatVersion;
    raw.put("meta", "format_version", {reinterpret_cast<const std::byte*>(&v1), 4});
  }
  fl::Client c(fl::test::test_options(dir));
  EXPECT_EQ(c.get_offline_status().queue_size, 1u);
}

// ---- Map size -----------------------------------------------------------------------------

// A visitor that throws (the uploader's rendering may, on bad_alloc) must not leave its
// read transaction open: LMDB has 126 reader slots, and a leaked one pins pages forever.
TEST(JournalScan, AVisitorThatThrowsLeavesNoReaderBehind) {
  fl::test::TempDir tmp;
  {
    fl::Client c(fl::test::test_options(tmp / "j"));
    log_numbered(c, 0, 3);
  }
  auto j = fd::Journal::open_read_only(tmp / "j");
  for (int i = 0; i < 300; ++i) {
    EXPECT_THROW(j->scan(fd::RecordSet::Normal, 0, 10,
                         [](std::uint64_t, std::span<const std::byte>) {
                           throw std::runtime_error("visitor failed");
                         }),
                 std::runtime_error);
  }
  std::size_t seen = 0;
  EXPECT_EQ(j->scan(fd::RecordSet::Normal, 0, 10,
                    [&](std::uint64_t, std::span<const std::byte>) { ++seen; }),
            0u);
  EXPECT_EQ(seen, 3u);
}

TEST(JournalMap, GrowsFromOneMebibyteAndKeepsEveryRecord) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  auto o = fl::test::blocking_options(dir);
  o.journal_initial_bytes = std::size_t{1} << 20;
  constexpr int kRecords = 6000;
  const std::string payload(1024, 'p');  // ~6 MiB of records: three doublings at least
  {
    fl::Client c(o);
    EXPECT_EQ(c.get_offline_status().journal_map_bytes, std::size_t{1} << 20);
    for (int i = 0; i < kRecords; ++i) {
      ASSERT_EQ(c.log_prediction({{"n", i}, {"s", std::string_view(payload)}}, {{"p", i * 0.5}}),
                fl::LogResult::Ok);
      if (i % 200 == 199) c.flush();  // paces the producer: Block never spins for long
    }
    c.flush();
    const auto s = c.get_offline_status();
    EXPECT_GE(s.journal_map_bytes, std::size_t{8} << 20);
    EXPECT_EQ(s.dropped.journal_full, 0u);
    EXPECT_EQ(s.dropped.journal_error, 0u);
    EXPECT_EQ(s.committed_total, static_cast<std::uint64_t>(kRecords));
    EXPECT_EQ(s.queue_size, static_cast<std::size_t>(kRecords));
  }
  const auto recs = read_journal(dir);
  ASSERT_EQ(recs.size(), static_cast<std::size_t>(kRecords));
  for (int i = 0; i < kRecords; ++i) {
    const auto& r = recs[static_cast<std::size_t>(i)];
    ASSERT_EQ(r.error, "");
    ASSERT_EQ(r.inputs.size(), 2u);
    EXPECT_EQ(r.inputs[0].i, i);
    EXPECT_EQ(r.inputs[1].s, payload);
    EXPECT_EQ(r.outputs.at(0).d, i * 0.5);
  }
  // Reopening with the small initial size maps at least all the data.
  fl::Client c(o);
  const auto s = c.get_offline_status();
  EXPECT_GE(s.journal_map_bytes, std::size_t{6} << 20);
  EXPECT_GE(s.journal_map_bytes, s.journal_used_bytes);
  EXPECT_EQ(s.queue_size, static_cast<std::size_t>(kRecords));
  // ... and grows again when it must.
  for (int i = 0; i < 2000; ++i) {
    if (i % 200 == 199) c.flush();
    ASSERT_EQ(
        c.log_prediction({{"n", kRecords + i}, {"s", std::string_view(payload)}}, {{"p", 0.0}}),
        fl::LogResult::Ok);
  }
  c.flush();
  EXPECT_EQ(c.get_offline_status().queue_size, static_cast<std::size_t>(kRecords + 2000));
  EXPECT_EQ(c.get_offline_status().dropped.journal_full, 0u);
}

TEST(JournalMap, FullJournalDropsAndCountsButKeepsWhatWasCommitted) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  auto o = fl::test::blocking_options(dir);
  o.journal_initial_bytes = std::size_t{1} << 20;
  o.journal_max_bytes = std::size_t{1} << 20;  // no room to grow
  o.batch_max_records = 64;                    // small batches: some fit, the rest not
  constexpr int kRecords = 3000;               // ~3 MiB: does not fit in 1 MiB
  const std::string payload(1000, 'q');
  std::uint64_t committed = 0;
  {
    fl::Client c(o);
    for (int i = 0; i < kRecords; ++i) {
      ASSERT_EQ(c.log_prediction({{"n", i}, {"s", std::string_view(payload)}}, {{"p", 1.0}}),
                fl::LogResult::Ok);
      if (i % 200 == 199) {
        ASSERT_TRUE(c.flush_for(30s));  // paces the producer
      }
    }
    ASSERT_TRUE(c.flush_for(30s));  // a full journal must not stall flush()
    const auto s = c.get_offline_status();
    EXPECT_GT(s.dropped.journal_full, 0u);
    EXPECT_GT(s.committed_total, 0u);
    EXPECT_EQ(s.committed_total + s.dropped.journal_full, static_cast<std::uint64_t>(kRecords));
    EXPECT_EQ(s.journal_map_bytes, std::size_t{1} << 20);
    committed = s.committed_total;
    EXPECT_EQ(s.queue_size, committed);
  }
  // Everything committed is there, intact, in order, once.
  const auto recs = read_journal(dir);
  ASSERT_EQ(recs.size(), committed);
  std::int64_t last = -1;
  for (const auto& r : recs) {
    ASSERT_EQ(r.error, "");
    EXPECT_GT(r.inputs.at(0).i, last);
    last = r.inputs.at(0).i;
    EXPECT_EQ(r.inputs.at(1).s, payload);
  }
  // And the journal still opens and accepts what fits after a cleanup.
  fl::Client c(o);
  EXPECT_EQ(c.get_offline_status().queue_size, committed);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(c.cleanup_offline_queue(0s), committed);
  EXPECT_EQ(c.log_prediction({{"n", -1}}, {{"p", 1.0}}), fl::LogResult::Ok);
  c.flush();
  EXPECT_EQ(c.get_offline_status().queue_size, 1u);
  EXPECT_EQ(c.get_offline_status().dropped.journal_full, 0u);  // counted since start
}

// commit() stores what fits of a batch in a full journal; commit_all() stores all of it
// or nothing.
TEST(JournalMap, CommitAllStoresTheWholeBatchOrNothing) {
  fl::test::TempDir tmp;
  std::vector<std::byte> arena;
  std::vector<fd::PendingRecord> batch;
  const std::string payload(1000, 'q');
  for (int i = 0; i < 2000; ++i) {  // ~2 MB: does not fit in 1 MiB
    const auto rec = fl::test::encode_record(fd::kKindPrediction, fl::Priority::Normal, 1, {},
                                             {{"n", i}, {"s", payload}}, {});
    batch.push_back({fl::Priority::Normal, static_cast<std::uint32_t>(arena.size()),
                     static_cast<std::uint32_t>(rec.size())});
    arena.insert(arena.end(), rec.begin(), rec.end());
  }
  auto config = config_for(tmp / "some");
  config.max_map_bytes = config.initial_map_bytes;  // no room to grow
  std::size_t some = 0;
  {
    auto j = fd::Journal::open_for_writing(config);
    const auto out = j->commit(arena, batch, 0);
    some = out.committed;
    EXPECT_GT(some, 0u);
    EXPECT_EQ(out.committed + out.dropped_journal_full, batch.size());
  }
  EXPECT_EQ(read_journal(tmp / "some").size(), some);

  config.dir = tmp / "none";
  {
    auto j = fd::Journal::open_for_writing(config);
    const auto out = j->commit_all(arena, batch, 0);
    EXPECT_EQ(out.committed, 0u);
    EXPECT_EQ(out.dropped_journal_full, batch.size());
    EXPECT_NE(out.error.find("journal is full"), std::string::npos) << out.error;
    // What fits whole is stored whole.
    const auto fits = j->commit_all(arena, std::span(batch).first(some / 2), 0);
    EXPECT_EQ(fits.committed, some / 2);
  }
  EXPECT_EQ(read_journal(tmp / "none").size(), some / 2);
}

// ---- offline_max_queue_size -----------------------------------------------------------

TEST(JournalEviction, LowestPriorityOldestFirstCountedAndPersisted) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  auto o = fl::test::test_options(dir);
  o.offline_max_queue_size = 10;
  using P = fl::Priority;
  {
    fl::Client c(o);
    log_numbered(c, 100, 8, P::Low);  // LOW 100..107
    c.flush();
    log_numbered(c, 200, 4, P::Normal);  // 12 queued: the 2 oldest LOW go
    c.flush();
    auto s = c.get_offline_status();
    EXPECT_EQ(s.queue_size, 10u);
    EXPECT_EQ(s.dropped.evicted, (std::array<std::uint64_t, 4>{0, 0, 0, 2}));
    log_numbered(c, 300, 3, P::Critical);  // 13: 3 more LOW
    c.flush();
    log_numbered(c, 400, 5, P::High);  // 15: the last 3 LOW, then the 2 oldest NORMAL
    c.flush();
    s = c.get_offline_status();
    EXPECT_EQ(s.queue_size, 10u);
    EXPECT_EQ(s.queue_size_by_priority, (std::array<std::size_t, 4>{3, 5, 2, 0}));
    EXPECT_EQ(s.dropped.evicted, (std::array<std::uint64_t, 4>{0, 0, 2, 8}));
  }
  const auto recs = read_journal(dir);
  EXPECT_EQ(numbers_in(recs, fd::RecordSet::Critical), (std::vector<std::int64_t>{300, 301, 302}));
  EXPECT_EQ(numbers_in(recs, fd::RecordSet::High),
            (std::vector<std::int64_t>{400, 401, 402, 403, 404}));
  EXPECT_EQ(numbers_in(recs, fd::RecordSet::Normal), (std::vector<std::int64_t>{202, 203}));
  EXPECT_TRUE(numbers_in(recs, fd::RecordSet::Low).empty());

  // The counts are persistent: a new Client reports them, and adds to them.
  fl::Client c(o);
  auto s = c.get_offline_status();
  EXPECT_EQ(s.dropped.evicted, (std::array<std::uint64_t, 4>{0, 0, 2, 8}));
  log_numbered(c, 500, 1, P::Critical);  // 11: the oldest NORMAL (202) goes
  c.flush();
  s = c.get_offline_status();
  EXPECT_EQ(s.dropped.evicted, (std::array<std::uint64_t, 4>{0, 0, 3, 8}));
  EXPECT_EQ(numbers_in(read_journal(dir), fd::RecordSet::Normal), (std::vector<std::int64_t>{203}));
}

TEST(JournalEviction, OneBatchOverTheLimitKeepsTheHighestPriorities) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  auto o = fl::test::test_options(dir);
  o.offline_max_queue_size = 6;
  using P = fl::Priority;
  {
    fl::Client c(o);
    // Logged in reverse sync order, all before one flush.
    log_numbered(c, 40, 4, P::Low);
    log_numbered(c, 30, 4, P::Normal);
    log_numbered(c, 20, 4, P::High);
    log_numbered(c, 10, 4, P::Critical);
    c.flush();
    const auto s = c.get_offline_status();
    EXPECT_EQ(s.queue_size, 6u);
    EXPECT_EQ(s.dropped.evicted[0], 0u);
    EXPECT_EQ(s.dropped.evicted[3], 4u);
    EXPECT_EQ(s.dropped.evicted[1] + s.dropped.evicted[2], 6u);
  }
  const auto recs = read_journal(dir);
  EXPECT_EQ(numbers_in(recs, fd::RecordSet::Critical), (std::vector<std::int64_t>{10, 11, 12, 13}));
  EXPECT_TRUE(numbers_in(recs, fd::RecordSet::Low).empty());
  EXPECT_EQ(recs.size(), 6u);
}

TEST(JournalEviction, RetryFailedKeepsTheLimitEvictingInTheSameTransaction) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  auto o = fl::test::test_options(dir);
  o.offline_max_queue_size = 5;
  using P = fl::Priority;
  std::uint64_t next = 0;
  {
    fl::Client c(o);
    log_numbered(c, 100, 5, P::Low);  // LOW 100..104: the queue is at its limit
    c.flush();
    next = c.get_offline_status().next_seq;
  }
  // Five failed records: NORMAL 200..202 and LOW 300, 301.
  {
    fl::test::RawLmdb raw(dir);
    auto put_failed = [&](std::uint64_t seq, P p, std::int64_t n) {
      const auto rec =
          fl::test::encode_record(fd::kKindPrediction, p, now_ns(), {}, {{"n", n}}, {{"p", 0.5}});
      const auto failed = fd::with_failure({rec.data(), rec.size()}, 3, 400, "rejected");
      raw.put_seq("failed", seq, {failed.data(), failed.size()});
    };
    for (std::int64_t i = 0; i < 3; ++i) put_failed(next++, P::Normal, 200 + i);
    for (std::int64_t i = 0; i < 2; ++i) put_failed(next++, P::Low, 300 + i);
  }
  {
    fl::Client c(o);
    ASSERT_EQ(c.get_offline_status().failed_count, 5u);
    EXPECT_EQ(c.retry_failed(), 5u);
    // 10 queued: the 5 oldest of the lowest priority (the LOW ones queued first) go.
    const auto s = c.get_offline_status();
    EXPECT_EQ(s.queue_size, 5u);
    EXPECT_EQ(s.failed_count, 0u);
    EXPECT_EQ(s.queue_size_by_priority, (std::array<std::size_t, 4>{0, 0, 3, 2}));
    EXPECT_EQ(s.dropped.evicted, (std::array<std::uint64_t, 4>{0, 0, 0, 5}));
  }
  const auto recs = read_journal(dir);
  EXPECT_EQ(numbers_in(recs, fd::RecordSet::Normal), (std::vector<std::int64_t>{200, 201, 202}));
  EXPECT_EQ(numbers_in(recs, fd::RecordSet::Low), (std::vector<std::int64_t>{300, 301}));
  EXPECT_TRUE(numbers_in(recs, fd::RecordSet::Failed).empty());
  // The evictions are persistent, like those of a commit.
  fl::Client c(o);
  EXPECT_EQ(c.get_offline_status().dropped.evicted, (std::array<std::uint64_t, 4>{0, 0, 0, 5}));
}

// ---- cleanup_offline_queue ------------------------------------------------------------------

TEST(JournalCleanup, RemovesQueuedAndFailedRecordsOlderThanTheCutoff) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  const auto o = fl::test::test_options(dir);
  std::uint64_t next = 0;
  {
    fl::Client c(o);
    log_numbered(c, 0, 5, fl::Priority::Critical);
    log_numbered(c, 5, 10, fl::Priority::Normal);
    log_numbered(c, 15, 5, fl::Priority::Low);
    c.flush();
    next = c.get_offline_status().next_seq;
    EXPECT_EQ(next, 21u);
  }
  // Plant an ancient LOW record (2000-01-01) and a failed record from an hour ago.
  const auto ancient = fl::test::encode_record(fd::kKindPrediction, fl::Priority::Low,
                                               946'684'800'000'000'000, {}, {{"n", -1}}, {});
  const auto recent = fl::test::encode_record(fd::kKindPrediction, fl::Priority::High,
                                              now_ns() - 3600'000'000'000, {}, {{"n", -2}}, {});
  const auto failed = fd::with_failure({recent.data(), recent.size()}, 3, 500, "server error");
  {
    fl::test::RawLmdb raw(dir);
    raw.put_seq("low", next, {ancient.data(), ancient.size()});
    raw.put_seq("failed", next + 1, {failed.data(), failed.size()});
  }
  fl::Client c(o);
  auto s = c.get_offline_status();
  EXPECT_EQ(s.next_seq, next + 2);  // resumes after the largest key of every set
  EXPECT_EQ(s.queue_size, 21u);
  EXPECT_EQ(s.failed_count, 1u);

  EXPECT_EQ(c.cleanup_offline_queue(std::chrono::days{7}), 1u);  // only the ancient one
  s = c.get_offline_status();
  EXPECT_EQ(s.queue_size, 20u);
  EXPECT_EQ(s.failed_count, 1u);
  EXPECT_EQ(s.dropped.cleaned_up, 1u);
  EXPECT_EQ(c.cleanup_offline_queue(std::chrono::days{7}), 0u);  // nothing new
  EXPECT_EQ(c.cleanup_offline_queue(std::chrono::hours{2}), 0u);
  EXPECT_EQ(c.cleanup_offline_queue(std::chrono::minutes{30}), 1u);  // the failed one
  EXPECT_EQ(c.get_offline_status().failed_count, 0u);

  // A record logged now is judged too, even if still in memory when cleanup starts.
  EXPECT_EQ(c.log_event("late", {}), fl::LogResult::Ok);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(c.cleanup_offline_queue(0s), 21u);
  s = c.get_offline_status();
  EXPECT_EQ(s.queue_size, 0u);
  EXPECT_EQ(s.failed_count, 0u);
  EXPECT_EQ(s.dropped.cleaned_up, 23u);
  EXPECT_TRUE(read_journal(dir).empty());
}

// A record whose checksum fails may have any timestamp: cleanup keeps it (for the dump
// to report), however old its timestamp bytes now look.
TEST(JournalCleanup, KeepsADamagedRecordWhoseTimestampLooksOld) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  const auto o = fl::test::test_options(dir);
  std::uint64_t next = 0;
  {
    fl::Client c(o);
    log_numbered(c, 0, 3);
    c.flush();
    next = c.get_offline_status().next_seq;
  }
  // A record of now whose timestamp lost bit 60 (on disk, after its checksum was
  // computed): it now reads as a time in 1990.
  const std::int64_t ts = now_ns();
  ASSERT_NE(ts & (std::int64_t{1} << 60), 0);
  auto damaged =
      fl::test::encode_record(fd::kKindPrediction, fl::Priority::Normal, ts, {}, {{"n", -1}}, {});
  damaged[8 + 7] ^= std::byte{0x10};  // the timestamp is little-endian at offset 8
  fd::DecodedRecord rec;
  ASSERT_EQ(fd::decode_record({damaged.data(), damaged.size()}, rec), "checksum mismatch");
  {
    fl::test::RawLmdb raw(dir);
    raw.put_seq("normal", next, {damaged.data(), damaged.size()});
  }
  {
    fl::Client c(o);
    EXPECT_EQ(c.cleanup_offline_queue(std::chrono::days{7}), 0u);
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(c.cleanup_offline_queue(0s), 3u);  // the three good records only
    const auto s = c.get_offline_status();
    EXPECT_EQ(s.queue_size, 1u);
    EXPECT_EQ(s.dropped.cleaned_up, 3u);
  }
  const auto recs = read_journal(dir);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].seq, next);
  EXPECT_EQ(recs[0].error, "checksum mismatch");
}

TEST(JournalCleanup, CountIsPersistentAndNegativeAgesThrow) {
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  {
    fl::Client c(fl::test::test_options(dir));
    log_numbered(c, 0, 3);
    c.flush();
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(c.cleanup_offline_queue(std::chrono::milliseconds(1)), 3u);
    const std::string err = error_of([&] { c.cleanup_offline_queue(std::chrono::seconds(-1)); });
    EXPECT_TRUE(contains(err, "negative")) << err;
    error_of([&] { c.cleanup_offline_queue(std::chrono::duration<double>(std::nan(""))); });
    error_of([&] { c.cleanup_offline_queue(std::chrono::nanoseconds(-1)); });
  }
  fl::Client c(fl::test::test_options(dir));
  EXPECT_EQ(c.get_offline_status().dropped.cleaned_up, 3u);
  // A huge age removes nothing and does not overflow.
  log_numbered(c, 0, 1);
  EXPECT_EQ(c.cleanup_offline_queue(std::chrono::hours::max()), 0u);
  EXPECT_EQ(c.cleanup_offline_queue(std::chrono::duration<double>(1e300)), 0u);
  EXPECT_EQ(c.get_offline_status().queue_size, 1u);
}

TEST(JournalCleanup, RemovesMoreThanOneTransactionHolds) {
  // Cleanup deletes in transactions of 10,000; 25,000 records take three of them.
  fl::test::TempDir tmp;
  const auto dir = tmp / "j";
  constexpr int kRecords = 25'000;
  fl::Client c(fl::test::blocking_options(dir));
  auto s = c.schema({"n"}, {});
  for (int i = 0; i < kRecords; ++i) {
    ASSERT_EQ(c.log_prediction(s, {i}, {}, fl::Priority::Low), fl::LogResult::Ok);
    if (i % 2000 == 1999) c.flush();  // paces the producer
  }
  c.flush();
  ASSERT_EQ(c.get_offline_status().queue_size, static_cast<std::size_t>(kRecords));
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(c.cleanup_offline_queue(0s), static_cast<std::size_t>(kRecords));
  EXPECT_EQ(c.get_offline_status().queue_size, 0u);
  EXPECT_EQ(c.get_offline_status().dropped.cleaned_up, static_cast<std::uint64_t>(kRecords));
}
