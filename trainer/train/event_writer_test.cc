#include "trainer/train/event_writer.h"

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

namespace gauntlet {
namespace {

TEST(EventWriterTest, AppendsOneParsableJsonLinePerEvent) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/events.jsonl";
  std::ofstream(path) << "{\"started\":{}}\n";  // an earlier attempt's line stays
  {
    auto writer = *EventWriter::Open(path);
    v1::TrainerEvent metric;
    metric.mutable_metric()->set_name("train_loss");
    metric.mutable_metric()->set_value(3.5);
    metric.mutable_metric()->set_step(10);
    ASSERT_TRUE(writer->Write(metric).ok());
    // Flushed: visible to a reader while the writer is still open.
    std::ifstream partial(path);
    std::string first, second;
    std::getline(partial, first);
    ASSERT_TRUE(std::getline(partial, second));
    v1::TrainerEvent back;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(second, &back).ok());
    EXPECT_EQ(back.metric().name(), "train_loss");
    EXPECT_EQ(back.metric().step(), 10);
  }
  EXPECT_FALSE(EventWriter::Open("/nonexistent/dir/events").ok());
}

}  // namespace
}  // namespace gauntlet
