// The shortest path through the pipeline: log, flush, read back from the journal.
#include <gtest/gtest.h>

#include "flightlog/flightlog.hpp"
#include "format/record.hpp"
#include "journal/journal.hpp"
#include "support/temp_dir.hpp"

namespace fl = flightlog;

TEST(Smoke, LoggedRecordIsInTheJournalAfterFlush) {
  fl::test::TempDir tmp;
  {
    fl::Options o;
    o.offline_dir = tmp / "j";
    fl::Client c(o);
    auto s = c.schema({"a", "b"}, {"p"});
    ASSERT_EQ(c.log_prediction(s, {1.5, std::int64_t{7}}, {true}), fl::LogResult::Ok);
    ASSERT_EQ(c.log_prediction({{"x", "hello"}}, {{"y", 2.0}}, fl::Priority::Critical),
              fl::LogResult::Ok);
    c.flush();
    EXPECT_EQ(c.get_offline_status().queue_size, 2u);
  }
  auto j = fl::detail::Journal::open_read_only(tmp / "j");
  std::vector<std::string> names;
  for (auto set : {fl::detail::RecordSet::Critical, fl::detail::RecordSet::Normal}) {
    j->scan(set, 0, 10, [&](std::uint64_t, std::span<const std::byte> b) {
      fl::detail::DecodedRecord r;
      ASSERT_EQ(fl::detail::decode_record(b, r), "");
      names.emplace_back(r.inputs.at(0).name);
    });
  }
  EXPECT_EQ(names, (std::vector<std::string>{"x", "a"}));
}
