#include "bench/bench_rows.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cstdlib>
#include <fstream>

#include "gtest/gtest.h"
#include "trainer/train/event_writer.h"

namespace gauntlet {
namespace {

google::protobuf::ListValue Parse(const std::string& json) {
  google::protobuf::ListValue list;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &list).ok()) << json;
  return list;
}

TEST(BenchRowsTest, RowsRoundTripWithTheKeysTheReportReads) {
  BenchRow ok;
  ok.model = "gpt2-small";
  ok.gpu = "NVIDIA \"H200\"";  // quotes must be escaped
  ok.tokens_per_s = 5e5;
  ok.tokens_per_s_runs = {4.9e5, 5e5, 5.1e5};
  ok.mfu = 0.43;
  ok.flops_per_token = 8.5e8;
  ok.peak_flops = 989e12;
  ok.params = 124475904;
  ok.vocab_size = 50304;
  BenchRow failed;
  failed.model = "seed-worker";
  failed.error = "model.size: unknown size";
  const google::protobuf::ListValue list = Parse(BenchRowsToJson({ok, failed}));
  ASSERT_EQ(list.values_size(), 2);
  const auto& a = list.values(0).struct_value().fields();
  EXPECT_EQ(a.at("model").string_value(), "gpt2-small");
  EXPECT_EQ(a.at("impl").string_value(), "gauntlet");
  EXPECT_EQ(a.at("gpu").string_value(), "NVIDIA \"H200\"");
  EXPECT_DOUBLE_EQ(a.at("tokens_per_s").number_value(), 5e5);
  EXPECT_EQ(a.at("tokens_per_s_runs").list_value().values_size(), 3);
  EXPECT_DOUBLE_EQ(a.at("mfu").number_value(), 0.43);
  EXPECT_DOUBLE_EQ(a.at("peak_flops").number_value(), 989e12);
  EXPECT_DOUBLE_EQ(a.at("params").number_value(), 124475904);
  EXPECT_DOUBLE_EQ(a.at("vocab_size").number_value(), 50304);
  const auto& b = list.values(1).struct_value().fields();
  EXPECT_EQ(b.at("error").string_value(), "model.size: unknown size");
  EXPECT_TRUE(b.at("tokens_per_s").has_null_value());
  EXPECT_TRUE(b.at("mfu").has_null_value());
}

TEST(BenchRowsTest, UnknownPeakGivesNullMfu) {
  BenchRow cpu;
  cpu.model = "seed-standard@tiny";
  cpu.gpu = "cpu";
  cpu.tokens_per_s = 1000;
  const google::protobuf::ListValue list = Parse(BenchRowsToJson({cpu}));
  const auto& f = list.values(0).struct_value().fields();
  EXPECT_TRUE(f.at("mfu").has_null_value());
  EXPECT_TRUE(f.at("peak_flops").has_null_value());
}

TEST(BenchRowsTest, UnwritablePathNamesTheFlag) {
  const absl::Status s = WriteBenchRows("/nonexistent-dir/rows.json", {});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--json_out"), std::string::npos);
}

TEST(BenchRowsTest, ReadsTheStartedEventEventWriterWrote) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/events.jsonl";
  {
    absl::StatusOr<std::unique_ptr<EventWriter>> writer = EventWriter::Open(path);
    ASSERT_TRUE(writer.ok()) << writer.status();
    v1::TrainerEvent metric;
    metric.mutable_metric()->set_name("train_loss");
    ASSERT_TRUE((*writer)->Write(metric).ok());
    v1::TrainerEvent started;
    started.mutable_started()->set_device("cuda:0 NVIDIA H200");
    started.mutable_started()->set_flops_per_token(1.5e8);
    started.mutable_started()->set_vocab_size(50304);
    ASSERT_TRUE((*writer)->Write(started).ok());
  }
  absl::StatusOr<v1::TrainerStarted> got = ReadTrainerStarted(path);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->device(), "cuda:0 NVIDIA H200");
  EXPECT_DOUBLE_EQ(got->flops_per_token(), 1.5e8);
  EXPECT_EQ(got->vocab_size(), 50304);
}

TEST(BenchRowsTest, StartedEventErrorsNameTheFileAndLine) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/bad.jsonl";
  std::ofstream(path) << "{not json\n";
  absl::StatusOr<v1::TrainerStarted> got = ReadTrainerStarted(path);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("bad.jsonl:1"), std::string::npos) << got.status();
  EXPECT_FALSE(ReadTrainerStarted(path + ".missing").ok());
}

}  // namespace
}  // namespace gauntlet
