#include "common/yaml_proto.h"

#include <string>

#include "gauntlet/v1/spec.pb.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace gauntlet {
namespace {

using google::protobuf::util::MessageDifferencer;

absl::Status Parse(const std::string& yaml, google::protobuf::Message* message,
                   SourceMap* source_map = nullptr) {
  return YamlToMessage(YAML::Load(yaml), message, "", source_map);
}

TEST(YamlProtoTest, ParsesNestedFieldsAndRecordsOneBasedMarks) {
  v1::TrialSpec spec;
  SourceMap marks;
  ASSERT_TRUE(Parse("data:\n"
                    "  path: a.txt\n"
                    "  include_suffixes: [.c, .h]\n"
                    "train:\n"
                    "  optimizer: {lr: 1e-3}\n"
                    "budget: {tokens: 2e6}\n",
                    &spec, &marks)
                  .ok());
  EXPECT_EQ(spec.data().path(), "a.txt");
  ASSERT_EQ(spec.data().include_suffixes_size(), 2);
  EXPECT_EQ(spec.data().include_suffixes(1), ".h");
  EXPECT_TRUE(spec.train().optimizer().has_lr());
  EXPECT_DOUBLE_EQ(spec.train().optimizer().lr(), 1e-3);
  EXPECT_FALSE(spec.train().optimizer().has_beta1());
  EXPECT_EQ(spec.budget().tokens(), 2000000);  // integral float notation is accepted for ints

  YAML::Mark mark;
  ASSERT_TRUE(marks.Find("train.optimizer.lr", &mark));
  EXPECT_EQ(FormatMark(mark), "line 5, column 15: ");
  ASSERT_TRUE(marks.Find("data.include_suffixes[1]", &mark));
  EXPECT_EQ(FormatMark(mark), "line 3, column 26: ");
  // Unrecorded paths fall back to their nearest recorded ancestor.
  ASSERT_TRUE(marks.Find("train.optimizer.beta1", &mark));
  EXPECT_EQ(FormatMark(mark), "line 5, column 3: ");
  EXPECT_FALSE(marks.Find("model.arch", &mark));
}

TEST(YamlProtoTest, PathPrefixNamesNestedErrors) {
  v1::TrialSpec spec;
  absl::Status status = YamlToMessage(YAML::Load("model: {n_heads: many}"), &spec, "variants[2]");
  EXPECT_EQ(status.message(),
            "line 1, column 9: variants[2].model.n_heads: expected an integer (got \"many\")");
}

TEST(YamlProtoTest, UnknownFieldSuggestsTheClosestName) {
  v1::TrialSpec spec;
  EXPECT_EQ(Parse("model:\n  dmodel: 3\n", &spec).message(),
            "line 2, column 3: model.dmodel: unknown field (did you mean d_model?)");
  EXPECT_EQ(Parse("checkpoint: {zzz: 1}", &spec).message(),
            "line 1, column 14: checkpoint.zzz: unknown field (expected one of: every_steps, "
            "keep_last)");
}

TEST(YamlProtoTest, TypeAndRangeErrorsNameTheField) {
  v1::TrialSpec spec;
  EXPECT_EQ(Parse("train: {batch_size: 2.5}", &spec).message(),
            "line 1, column 9: train.batch_size: expected an integer (got \"2.5\")");
  EXPECT_EQ(Parse("train: {batch_size: 3000000000}", &spec).message(),
            "line 1, column 9: train.batch_size: out of range for int32 (got 3000000000)");
  EXPECT_EQ(Parse("budget: {steps: 99999999999999999999}", &spec).message(),
            "line 1, column 10: budget.steps: out of range for int64 (got 99999999999999999999)");
  EXPECT_EQ(Parse("budget: {seconds: .inf}", &spec).message(),
            "line 1, column 10: budget.seconds: must be a finite number (got .inf)");
  EXPECT_EQ(Parse("data: {path: [a]}", &spec).message(),
            "line 1, column 8: data.path: expected a string (got a list)");
  EXPECT_EQ(Parse("data: {include_suffixes: .c}", &spec).message(),
            "line 1, column 8: data.include_suffixes: expected a list (got \".c\")");
  EXPECT_EQ(Parse("data: 3", &spec).message(),
            "line 1, column 1: data: expected a map (got \"3\")");
  EXPECT_EQ(Parse("data: {path: }", &spec).message(), "line 1, column 8: data.path: missing value");
  EXPECT_EQ(Parse("budget: {steps: 1, tokens: 2}", &spec).message(),
            "line 1, column 20: budget.tokens: only one of steps, tokens, seconds may be set "
            "(already set: steps)");
  EXPECT_EQ(Parse("seed: 1\nseed: 2\n", &spec).message(),
            "line 2, column 1: seed: duplicate key (first at line 1, column 1)");
}

TEST(YamlProtoTest, NullMessageIsEmptyAndNotAnError) {
  v1::TrialSpec spec;
  ASSERT_TRUE(Parse("eval:\nmodel: {arch: worker}\n", &spec).ok());
  EXPECT_TRUE(spec.has_eval());
  EXPECT_EQ(spec.model().arch(), "worker");
}

TEST(YamlProtoTest, MapsEnumsAndBoolsThroughStruct) {
  google::protobuf::Struct s;
  ASSERT_TRUE(Parse("fields:\n"
                    "  a: {number_value: 2.5}\n"
                    "  b: {bool_value: yes}\n"
                    "  c: {null_value: NULL_VALUE}\n",
                    &s)
                  .ok());
  ASSERT_EQ(s.fields().size(), 3u);
  EXPECT_DOUBLE_EQ(s.fields().at("a").number_value(), 2.5);
  EXPECT_TRUE(s.fields().at("b").bool_value());
  EXPECT_EQ(s.fields().at("c").kind_case(), google::protobuf::Value::kNullValue);

  EXPECT_EQ(Parse("fields: {a: {null_value: NONE}}", &s).message(),
            "line 1, column 14: fields[a].null_value: unknown value \"NONE\" (expected one of: "
            "NULL_VALUE)");
  EXPECT_EQ(Parse("fields: {a: {bool_value: maybe}}", &s).message(),
            "line 1, column 14: fields[a].bool_value: expected true or false (got \"maybe\")");
  EXPECT_EQ(Parse("fields:\n  a: {}\n  a: {}\n", &s).message(),
            "line 3, column 3: fields[a]: duplicate key (first at line 2, column 3)");
}

TEST(YamlProtoTest, TrialSpecRoundTripsExactly) {
  v1::TrialSpec spec;
  spec.mutable_data()->set_path("dir with spaces/a: b # c.txt");
  spec.mutable_data()->set_tokenizer("true");  // a string that looks like a bool
  spec.mutable_data()->set_val_fraction(0.1);
  spec.mutable_data()->add_include_suffixes("123");
  spec.mutable_data()->add_include_suffixes("");
  spec.mutable_data()->add_include_suffixes("'quoted\"");
  spec.mutable_data()->set_max_bytes(int64_t{1} << 40);
  spec.mutable_model()->set_arch("hybrid");
  spec.mutable_model()->set_dropout(1.0 / 3.0);
  spec.mutable_model()->set_n_layers(0);  // explicit zero keeps its presence
  spec.mutable_model()->mutable_hybrid()->add_layer_types("attn");
  spec.mutable_model()->mutable_worker();  // present but empty
  spec.mutable_train()->mutable_optimizer()->set_lr(3e-4);
  spec.mutable_train()->mutable_optimizer()->set_eps(1e-8);
  spec.mutable_train()->set_bucket_mib(25);
  spec.mutable_budget()->set_seconds(299.99999999999994);
  spec.set_seed(-7);
  spec.set_run_dir("/tmp/run");

  const std::string yaml = MessageToYamlString(spec);
  v1::TrialSpec back;
  ASSERT_TRUE(Parse(yaml, &back).ok()) << yaml;
  EXPECT_TRUE(MessageDifferencer::Equals(spec, back)) << yaml << "\n" << back.DebugString();
}

TEST(YamlProtoTest, StructWithMapRoundTrips) {
  google::protobuf::Struct s;
  (*s.mutable_fields())["x y"].set_number_value(-0.0001);
  (*s.mutable_fields())["k"].set_string_value("v");
  google::protobuf::Struct back;
  ASSERT_TRUE(Parse(MessageToYamlString(s), &back).ok());
  EXPECT_TRUE(MessageDifferencer::Equals(s, back));
}

TEST(YamlProtoTest, SetFieldByPathCreatesParentsAndChecksTypes) {
  v1::TrialSpec spec;
  ASSERT_TRUE(SetFieldByPath(&spec, "model.worker.interval", YAML::Node("8"),
                             YAML::Mark::null_mark(), "sweep.model.worker.interval[0]")
                  .ok());
  EXPECT_EQ(spec.model().worker().interval(), 8);
  EXPECT_EQ(SetFieldByPath(&spec, "model.worker.interval", YAML::Node("x"), YAML::Mark::null_mark(),
                           "sweep.model.worker.interval[1]")
                .message(),
            "sweep.model.worker.interval[1]: expected an integer (got \"x\")");
  EXPECT_EQ(SetFieldByPath(&spec, "model.arch.x", YAML::Node("1"), YAML::Mark::null_mark(), "s")
                .message(),
            "s: model.arch is not a message, so it has no field \"x\"");
  EXPECT_EQ(
      SetFieldByPath(&spec, "modle.arch", YAML::Node("1"), YAML::Mark::null_mark(), "s").message(),
      "s: unknown field modle (did you mean model?)");
}

TEST(YamlProtoTest, ShortestDoubleReadsBackExactly) {
  EXPECT_EQ(ShortestDouble(0.1), "0.1");
  EXPECT_EQ(ShortestDouble(3e-4), "0.0003");
  EXPECT_EQ(ShortestDouble(25), "25");
  EXPECT_EQ(ShortestDouble(1e-8), "1e-08");
  const double third = 1.0 / 3.0;
  EXPECT_EQ(std::stod(ShortestDouble(third)), third);
}

TEST(YamlProtoTest, ParentPath) {
  EXPECT_EQ(ParentPath("variants[2].model.arch"), "variants[2].model");
  EXPECT_EQ(ParentPath("variants[2].model"), "variants[2]");
  EXPECT_EQ(ParentPath("variants[2]"), "variants");
  EXPECT_EQ(ParentPath("variants"), "");
  EXPECT_EQ(ParentPath(""), "");
}

}  // namespace
}  // namespace gauntlet
