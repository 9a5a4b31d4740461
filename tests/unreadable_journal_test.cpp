// A journal whose LMDB tree is damaged past the records' checksums: some branch pages of
// the NORMAL set point at pages beyond the end of the file, so reading that set on
// stops with MDB_PAGE_NOTFOUND. Journal::scan must say so (never look like the end),
// and the dump tool, the uploader and cleanup must name the failure, keep what they read
// before it, and go on with the other sets.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "flightlog/flightlog.hpp"
#include "journal/journal.hpp"
#include "support/checks.hpp"
#include "support/process.hpp"
#include "support/strings.hpp"
#include "support/temp_dir.hpp"
#include "support/test_certs.hpp"
#include "support/test_options.hpp"
#include "support/tls_receiver.hpp"

namespace fl = flightlog;
namespace fd = flightlog::detail;
namespace ft = flightlog::test;
using namespace std::chrono_literals;

namespace {

constexpr int kCritical = 3;
constexpr int kNormal = 2000;

// LMDB's page layout (lmdb.h's MDB_page and MDB_node, little-endian): the page number
// in bytes 0-7, flags in 10-11, `lower` (the end of the node offsets) in 12-13, node
// offsets from byte 16. A branch node starts with its child's page number, spread over
// three 16-bit words.
constexpr std::size_t kPageBytes = 4096;
constexpr std::uint16_t kBranchPage = 0x01;

std::uint16_t u16_at(const std::vector<char>& b, std::size_t at) {
  std::uint16_t v;
  std::memcpy(&v, b.data() + at, 2);
  return v;
}

// Points every child but the first of every branch page at a page far past the end of
// the file. Returns how many children were redirected.
std::size_t break_branch_pages(const std::filesystem::path& dir) {
  const auto file = dir / "data.mdb";
  std::vector<char> bytes;
  {
    std::ifstream in(file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::size_t broken = 0;
  for (std::size_t page = 2; (page + 1) * kPageBytes <= bytes.size(); ++page) {
    const std::size_t base = page * kPageBytes;
    std::uint64_t pgno;
    std::memcpy(&pgno, bytes.data() + base, 8);
    if (pgno != page || u16_at(bytes, base + 10) != kBranchPage) continue;
    const std::size_t lower = u16_at(bytes, base + 12);
    for (std::size_t i = 1; 16 + 2 * i < lower; ++i) {
      const std::size_t node = base + u16_at(bytes, base + 16 + 2 * i);
      const std::uint16_t far[3] = {0xffff, 0xffff, 0x00ff};
      std::memcpy(bytes.data() + node, far, sizeof far);
      ++broken;
    }
  }
  std::ofstream out(file, std::ios::binary | std::ios::in | std::ios::out);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return broken;
}

class UnreadableJournal : public ::testing::Test {
 protected:
  // A few CRITICAL records in one leaf page, then enough 1 KB NORMAL records for a tree
  // with branch pages; then the branch pages are broken.
  void SetUp() override {
    fl::Options o = ft::blocking_options(dir());
    {
      fl::Client c(o);
      for (int n = 0; n < kCritical; ++n) {
        ASSERT_EQ(c.log_event("alarm", {{"n", n}}, fl::Priority::Critical), fl::LogResult::Ok);
      }
      const std::string pad(1000, 'x');
      for (int n = 0; n < kNormal; ++n) {
        ASSERT_EQ(c.log_event("e", {{"n", n}, {"pad", pad}}), fl::LogResult::Ok);
      }
      c.flush();
    }
    ASSERT_GT(break_branch_pages(dir()), 0u);
  }

  std::filesystem::path dir() const { return tmp_ / "journal"; }

  ft::TempDir tmp_;
};

}  // namespace

TEST_F(UnreadableJournal, ScanThrowsNamingTheSetAfterVisitingWhatItCouldRead) {
  auto j = fd::Journal::open_read_only(dir());
  int critical = 0;
  EXPECT_EQ(j->scan(fd::RecordSet::Critical, 0, 100, [&](auto, auto) { ++critical; }), 0u);
  EXPECT_EQ(critical, kCritical);

  int normal = 0;
  const std::string error = ft::error_of([&] {
    std::uint64_t from = 0;
    do {
      from = j->scan(fd::RecordSet::Normal, from, 100, [&](auto, auto) { ++normal; });
    } while (from != 0);
  });
  EXPECT_TRUE(ft::contains(error, "cannot read the normal records after seq")) << error;
  EXPECT_TRUE(ft::contains(error, "MDB_PAGE_NOTFOUND")) << error;
  EXPECT_GT(normal, 0);
  EXPECT_LT(normal, kNormal);
}

TEST_F(UnreadableJournal, DumpPrintsWhatItCanReadNamesTheFailureAndExitsWithThree) {
  const auto res = ft::run_dump(dir());
  EXPECT_EQ(res.exit_code, 3) << res.err;
  EXPECT_TRUE(ft::contains(res.err, "cannot read the normal records")) << res.err;
  const auto lines = ft::split_lines(res.out);
  ASSERT_GT(lines.size(), static_cast<std::size_t>(kCritical));
  EXPECT_LT(lines.size(), static_cast<std::size_t>(kCritical + kNormal));
  for (int i = 0; i < kCritical; ++i) {
    EXPECT_TRUE(ft::contains(lines[static_cast<std::size_t>(i)], "\"priority\":\"CRITICAL\""))
        << lines[static_cast<std::size_t>(i)];
  }

  const auto verify = ft::run_dump(dir(), {"--verify"});
  EXPECT_EQ(verify.exit_code, 3) << verify.out << verify.err;
  EXPECT_TRUE(ft::contains(verify.out + verify.err, "unreadable: cannot read the normal records"))
      << verify.out << verify.err;
}

TEST_F(UnreadableJournal, UploaderShipsTheOtherSetsAndReportsTheFailure) {
  ft::TlsReceiver rx;
  fl::Options o = ft::blocking_options(dir());
  o.endpoint = rx.url("127.0.0.1", "/ingest");
  o.api_key = "unreadable-journal-test-key";
  o.ca_file = ft::ca_file_in(tmp_.path());
  o.offline_auto_sync = false;
  fl::Client c(o);
  const fl::SyncResult r = c.sync_offline_queue();
  EXPECT_GE(r.synced, static_cast<std::uint64_t>(kCritical));
  EXPECT_LT(r.synced, static_cast<std::uint64_t>(kCritical + kNormal));
  const auto st = c.get_offline_status();
  // Delivered records are deleted even when their batch also holds records beside the
  // damaged page (the delete is split until only those fail), and counted as synced.
  EXPECT_EQ(st.queue_size_by_priority[static_cast<std::size_t>(fl::Priority::Critical)], 0u);
  EXPECT_EQ(st.synced_total, r.synced);
  EXPECT_TRUE(ft::contains(st.last_error, "cannot read the normal records")) << st.last_error;
  EXPECT_FALSE(ft::contains(st.last_error, o.api_key));
  // CRITICAL went first and arrived whole.
  int critical = 0;
  for (const auto& q : rx.requests()) {
    for (const auto& line : ft::split_lines(q.body)) {
      if (ft::contains(line, "\"priority\":\"CRITICAL\"")) ++critical;
    }
  }
  EXPECT_EQ(critical, kCritical);
  // A second pass meets the same page and says so again; nothing crashes or hangs.
  c.sync_offline_queue();
  EXPECT_TRUE(ft::contains(c.get_offline_status().last_error, "cannot read the normal records"));
}

// Cleanup deletes what it can reach (the CRITICAL set here), then names the damaged set
// and says how many it deleted, rather than returning a count that looks complete.
TEST_F(UnreadableJournal, CleanupDeletesTheOtherSetsAndThrowsNamingTheDamage) {
  fl::Client c(ft::blocking_options(dir()));
  const auto before = c.get_offline_status();
  const std::string error = ft::error_of([&] { c.cleanup_offline_queue(std::chrono::seconds{0}); });
  EXPECT_TRUE(ft::contains(error, "cleanup_offline_queue: deleted ")) << error;
  EXPECT_TRUE(ft::contains(error, "normal record")) << error;
  EXPECT_TRUE(ft::contains(error, "MDB_PAGE_NOTFOUND")) << error;
  const auto after = c.get_offline_status();
  EXPECT_EQ(after.queue_size_by_priority[static_cast<std::size_t>(fl::Priority::Critical)], 0u);
  EXPECT_GE(after.dropped.cleaned_up, before.dropped.cleaned_up + kCritical);
  EXPECT_TRUE(ft::contains(
      error, "deleted " + std::to_string(after.dropped.cleaned_up - before.dropped.cleaned_up) +
                 " records"))
      << error;
}

// The same damage in the failed set: retry_failed() says so and moves nothing, rather
// than moving the records before the damage as if they were all there were.
TEST(UnreadableFailedSet, RetryFailedThrowsNamingTheDamageAndMovesNothing) {
  ft::TempDir tmp;
  const auto dir = tmp / "journal";
  {
    fl::Client c(ft::blocking_options(dir));
    const std::string pad(1000, 'x');
    for (int n = 0; n < kNormal; ++n) {
      ASSERT_EQ(c.log_event("e", {{"n", n}, {"pad", pad}}), fl::LogResult::Ok);
    }
    c.flush();
  }
  {
    fd::JournalConfig jc;
    jc.dir = dir;
    auto j = fd::Journal::open_for_writing(jc);
    std::vector<fd::RecordRef> refs;
    std::uint64_t from = 0;
    do {
      from = j->scan(fd::RecordSet::Normal, from, 500, [&](std::uint64_t seq, auto) {
        refs.push_back({fd::RecordSet::Normal, seq});
      });
    } while (from != 0);
    ASSERT_EQ(refs.size(), static_cast<std::size_t>(kNormal));
    ASSERT_EQ(j->move_to_failed(refs, 400, "rejected"), refs.size());
  }
  ASSERT_GT(break_branch_pages(dir), 0u);

  fl::Client c(ft::blocking_options(dir));
  const auto before = c.get_offline_status();
  const std::string error = ft::error_of([&] { c.retry_failed(); });
  EXPECT_TRUE(ft::contains(error, "retry_failed: no record moved")) << error;
  EXPECT_TRUE(ft::contains(error, "cannot read the failed records after seq")) << error;
  EXPECT_TRUE(ft::contains(error, "MDB_PAGE_NOTFOUND")) << error;
  const auto after = c.get_offline_status();
  EXPECT_EQ(after.queue_size, 0u);
  EXPECT_EQ(after.failed_count, before.failed_count);
}
