#include "trainer/data/corpus.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/data/test_util.h"

namespace gauntlet {
namespace {

using ::testing::HasSubstr;
using testing::MakeTempDir;
using testing::WriteFile;
using testing::WriteTarball;

v1::DataSpec Spec(const std::string& path) {
  v1::DataSpec spec;
  spec.set_path(path);
  return spec;
}

TEST(ReadCorpusTest, ReadsAFile) {
  const std::string dir = MakeTempDir();
  WriteFile(dir + "/a.txt", "hello\nworld\n");
  absl::StatusOr<std::string> corpus = ReadCorpus(Spec(dir + "/a.txt"));
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(*corpus, "hello\nworld\n");
}

TEST(ReadCorpusTest, DirectoryIsSortedAndFilteredBySuffix) {
  const std::string dir = MakeTempDir();
  WriteFile(dir + "/b.c", "B");
  WriteFile(dir + "/a.h", "A");
  WriteFile(dir + "/sub/c.c", "C");
  WriteFile(dir + "/skip.o", "XXX");
  v1::DataSpec spec = Spec(dir);
  absl::StatusOr<std::string> all = ReadCorpus(spec);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(*all, "ABXXXC");  // a.h, b.c, skip.o, sub/c.c
  spec.add_include_suffixes(".c");
  spec.add_include_suffixes(".h");
  absl::StatusOr<std::string> filtered = ReadCorpus(spec);
  ASSERT_TRUE(filtered.ok()) << filtered.status();
  EXPECT_EQ(*filtered, "ABC");
}

TEST(ReadCorpusTest, MaxBytesCutsTheStream) {
  const std::string dir = MakeTempDir();
  WriteFile(dir + "/a.txt", "0123456789");
  WriteFile(dir + "/b.txt", "abcdefghij");
  v1::DataSpec spec = Spec(dir);
  spec.set_max_bytes(13);
  absl::StatusOr<std::string> corpus = ReadCorpus(spec);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(*corpus, "0123456789abc");
}

class TarballTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TarballTest, StreamsEntriesInArchiveOrderWithFilterAndBound) {
  const std::string compression = GetParam();
  const std::string suffix = compression == "gzip" ? ".tar.gz"
                             : compression == "xz" ? ".tar.xz"
                                                   : ".tar";
  const std::string path = MakeTempDir() + "/corpus" + suffix;
  // A large, incompressible-ish entry makes the xz/gzip stream span many blocks.
  const std::string big = testing::RandomText(3 << 20, 7, "abcdefghijklmnopqrstuvwxyz\n");
  ASSERT_TRUE(WriteTarball(path,
                           {{"linux/z.c", "int z;\n"},
                            {"linux/Makefile", "all:\n"},
                            {"linux/a.h", "#define A\n"},
                            {"linux/big.txt", big}},
                           compression)
                  .ok());
  v1::DataSpec spec = Spec(path);
  spec.add_include_suffixes(".c");
  spec.add_include_suffixes(".h");
  absl::StatusOr<std::string> corpus = ReadCorpus(spec);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(*corpus, "int z;\n#define A\n");

  spec.clear_include_suffixes();
  absl::StatusOr<std::string> all = ReadCorpus(spec);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(*all, absl::StrCat("int z;\n", "all:\n", "#define A\n", big));

  spec.set_max_bytes(1000);
  absl::StatusOr<std::string> bounded = ReadCorpus(spec);
  ASSERT_TRUE(bounded.ok()) << bounded.status();
  EXPECT_EQ(*bounded, all->substr(0, 1000));
}

INSTANTIATE_TEST_SUITE_P(Compressions, TarballTest, ::testing::Values("none", "gzip", "xz"));

TEST(ReadCorpusTest, MissingPathIsNotFoundNamingThePath) {
  absl::StatusOr<std::string> corpus = ReadCorpus(Spec("/nonexistent/gauntlet/corpus.txt"));
  EXPECT_EQ(corpus.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(corpus.status().message(), HasSubstr("data.path"));
  EXPECT_THAT(corpus.status().message(), HasSubstr("/nonexistent/gauntlet/corpus.txt"));
}

TEST(ReadCorpusTest, EmptyCorpusIsAnError) {
  const std::string dir = MakeTempDir();
  WriteFile(dir + "/empty.txt", "");
  EXPECT_EQ(ReadCorpus(Spec(dir + "/empty.txt")).status().code(),
            absl::StatusCode::kInvalidArgument);
  WriteFile(dir + "/x.o", "binary");
  v1::DataSpec spec = Spec(dir);
  spec.add_include_suffixes(".c");
  absl::StatusOr<std::string> corpus = ReadCorpus(spec);
  EXPECT_EQ(corpus.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(corpus.status().message(), HasSubstr("include_suffixes [.c]"));
  EXPECT_EQ(ReadCorpus(Spec("")).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ReadCorpusTest, UnreadableArchiveIsDataLoss) {
  const std::string dir = MakeTempDir();
  WriteFile(dir + "/bad.tar.xz", "this is not an xz stream at all, just text");
  absl::StatusOr<std::string> corpus = ReadCorpus(Spec(dir + "/bad.tar.xz"));
  EXPECT_EQ(corpus.status().code(), absl::StatusCode::kDataLoss) << corpus.status();
  EXPECT_THAT(corpus.status().message(), HasSubstr("unreadable archive " + dir + "/bad.tar.xz"));

  // A valid gzip header followed by garbage: fails while streaming, not at open.
  const std::string good = dir + "/good.tar.gz";
  ASSERT_TRUE(WriteTarball(good, {{"a.txt", testing::RandomText(1 << 20, 3, "ab")}}, "gzip").ok());
  std::string bytes = testing::ReadFile(good);
  for (size_t i = 64; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  WriteFile(dir + "/corrupt.tar.gz", bytes);
  corpus = ReadCorpus(Spec(dir + "/corrupt.tar.gz"));
  EXPECT_EQ(corpus.status().code(), absl::StatusCode::kDataLoss) << corpus.status();
}

TEST(ReadCorpusTest, NegativeMaxBytesNamesTheField) {
  v1::DataSpec spec = Spec("/tmp");
  spec.set_max_bytes(-1);
  EXPECT_THAT(ReadCorpus(spec).status().message(), HasSubstr("data.max_bytes"));
}

}  // namespace
}  // namespace gauntlet
