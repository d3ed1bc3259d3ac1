#include "trainer/data/token_dataset.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "gauntlet/v1/spec.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/data/sha256.h"
#include "trainer/data/test_util.h"

namespace gauntlet {
namespace {

using ::testing::HasSubstr;
using testing::MakeTempDir;
using testing::WriteFile;

struct Fixture {
  std::string dir = MakeTempDir();
  v1::DataSpec spec;
  explicit Fixture(const std::string& text, const std::string& tokenizer = "char") {
    WriteFile(dir + "/corpus.txt", text);
    spec.set_path(dir + "/corpus.txt");
    spec.set_cache_dir(dir + "/cache");
    spec.set_tokenizer(tokenizer);
  }
};

std::vector<std::string> CacheFiles(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  return names;
}

TEST(TokenDatasetTest, SplitsByPositionAndDecodesBack) {
  const std::string text = testing::RandomText(1000, 5, "abcdefghij \n");
  Fixture f(text);
  absl::StatusOr<TokenDataset> ds = TokenDataset::Open(f.spec);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->vocab_size(), 12);
  EXPECT_EQ(ds->train_size(), 900);
  EXPECT_EQ(ds->val_size(), 100);
  EXPECT_EQ(ds->token_bytes(), 2);
  // Val token 0 is corpus character 900.
  std::vector<int64_t> window(10);
  ASSERT_TRUE(ds->CopyWindow(Split::kVal, 0, 10, window.data()).ok());
  std::vector<uint32_t> ids(window.begin(), window.end());
  EXPECT_EQ(*ds->tokenizer().Decode(ids), text.substr(900, 10));
  EXPECT_EQ(ds->at(Split::kTrain, 3), ds->tokenizer().Encode(text.substr(3, 1))->at(0));
  EXPECT_EQ(ds->CopyWindow(Split::kVal, 95, 6, window.data()).code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ds->NumWindows(Split::kVal, 64), 36);
}

TEST(TokenDatasetTest, ValFractionIsHonouredAndValidated) {
  Fixture f(std::string(200, 'x') + "y");
  f.spec.set_val_fraction(0.25);
  absl::StatusOr<TokenDataset> ds = TokenDataset::Open(f.spec);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->train_size(), 150);  // floor(0.75 * 201)
  EXPECT_EQ(ds->val_size(), 51);
  for (double bad : {0.0, 1.0, -0.5, 1.5}) {
    f.spec.set_val_fraction(bad);
    EXPECT_THAT(TokenDataset::Open(f.spec).status().message(), HasSubstr("data.val_fraction"));
  }
  f.spec.set_val_fraction(0.999);  // 0.2 of a token: the train split would be empty
  EXPECT_THAT(TokenDataset::Open(f.spec).status().message(), HasSubstr("empty split"));
}

TEST(TokenDatasetTest, CacheIsKeyedByContentAndTokenizerAndReused) {
  Fixture f("hello, cache\n");
  ASSERT_TRUE(TokenDataset::Open(f.spec).ok());
  ASSERT_EQ(CacheFiles(f.dir + "/cache").size(), 1u);
  absl::StatusOr<TokenDataset> first = TokenDataset::Open(f.spec);
  ASSERT_TRUE(first.ok());
  const std::string cache = first->cache_path();
  EXPECT_EQ(cache, f.dir + "/cache/" + first->content_hash() + ".tokens");
  EXPECT_EQ(first->content_hash(), Sha256Hex("gauntlet-tokens 1\nchar\nhello, cache\n"));

  // Reopening maps the same file without rewriting it.
  struct stat before, after;
  ASSERT_EQ(stat(cache.c_str(), &before), 0);
  ASSERT_TRUE(TokenDataset::Open(f.spec).ok());
  ASSERT_EQ(stat(cache.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);

  // Another tokenizer kind or other content gets another file.
  f.spec.set_tokenizer("byte");
  absl::StatusOr<TokenDataset> bytes = TokenDataset::Open(f.spec);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->vocab_size(), 256);
  EXPECT_EQ(bytes->at(Split::kTrain, 0), static_cast<uint32_t>('h'));
  WriteFile(f.spec.path(), "hello, cache!\n");
  ASSERT_TRUE(TokenDataset::Open(f.spec).ok());
  EXPECT_EQ(CacheFiles(f.dir + "/cache").size(), 3u);
}

TEST(TokenDatasetTest, CorruptCacheFileIsRebuilt) {
  Fixture f(testing::RandomText(5000, 2, "xyz"));
  absl::StatusOr<TokenDataset> ds = TokenDataset::Open(f.spec);
  ASSERT_TRUE(ds.ok());
  const std::string path = ds->cache_path();
  std::vector<int64_t> expected(100);
  ASSERT_TRUE(ds->CopyWindow(Split::kTrain, 0, 100, expected.data()).ok());
  ds = absl::InternalError("release the mapping");
  WriteFile(path, testing::ReadFile(path).substr(0, 200));  // truncated, as by a crash
  absl::StatusOr<TokenDataset> rebuilt = TokenDataset::Open(f.spec);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  std::vector<int64_t> got(100);
  ASSERT_TRUE(rebuilt->CopyWindow(Split::kTrain, 0, 100, got.data()).ok());
  EXPECT_EQ(got, expected);
}

TEST(TokenDatasetTest, ConcurrentOpensAgreeAndLeaveNoTemporaries) {
  Fixture f(testing::RandomText(200000, 9, "abcdefghijklmnopqrstuvwxyz .,\n"));
  std::vector<absl::StatusOr<TokenDataset>> results(6, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = TokenDataset::Open(f.spec); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->total_size(), 200000);
    EXPECT_EQ(r->at(Split::kVal, 777), results[0]->at(Split::kVal, 777));
  }
  EXPECT_EQ(CacheFiles(f.dir + "/cache").size(), 1u);
}

TEST(TokenDatasetTest, CacheDirFallsBackToEnvironment) {
  Fixture f("abc");
  f.spec.clear_cache_dir();
  const std::string env_dir = MakeTempDir() + "/env-cache";
  ASSERT_EQ(setenv("GAUNTLET_CACHE", env_dir.c_str(), 1), 0);
  EXPECT_EQ(ResolveCacheDir(f.spec), env_dir);
  absl::StatusOr<TokenDataset> ds = TokenDataset::Open(f.spec);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_THAT(ds->cache_path(), HasSubstr(env_dir + "/"));
  ASSERT_EQ(unsetenv("GAUNTLET_CACHE"), 0);
  ASSERT_EQ(setenv("HOME", "/home/someone", 1), 0);
  EXPECT_EQ(ResolveCacheDir(f.spec), "/home/someone/.cache/gauntlet/tokens");
}

TEST(TokenDatasetTest, ErrorsNameTheFieldAndPath) {
  Fixture f("0123456789");
  EXPECT_EQ(TokenDataset::Open(f.spec)->CheckWindow(Split::kVal, 1).code(),
            absl::StatusCode::kInvalidArgument);  // val holds 1 token, a window needs 2
  absl::Status short_train = TokenDataset::Open(f.spec)->CheckWindow(Split::kTrain, 9);
  EXPECT_THAT(short_train.message(), HasSubstr("model.seq_len + 1 = 10"));
  EXPECT_THAT(short_train.message(), HasSubstr(f.spec.path()));
  EXPECT_TRUE(TokenDataset::Open(f.spec)->CheckWindow(Split::kTrain, 8).ok());

  f.spec.set_tokenizer("bpe");
  EXPECT_THAT(TokenDataset::Open(f.spec).status().message(), HasSubstr("data.tokenizer"));
  f.spec.set_tokenizer("char");
  f.spec.set_cache_dir("/proc/gauntlet-cannot-write-here");
  EXPECT_THAT(TokenDataset::Open(f.spec).status().message(), HasSubstr("data.cache_dir"));
  f.spec.set_path(f.dir + "/missing.txt");
  EXPECT_EQ(TokenDataset::Open(f.spec).status().code(), absl::StatusCode::kNotFound);
}

TEST(TokenDatasetTest, TinyShakespeareMatchesTheReferenceSplit) {
  absl::StatusOr<std::string> path = testing::TinyShakespearePath();
  ASSERT_TRUE(path.ok()) << path.status();
  const std::string text = testing::ReadFile(*path);
  ASSERT_EQ(Sha256Hex(text), "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed")
      << *path << " is not the reference TinyShakespeare";
  v1::DataSpec spec;
  spec.set_path(*path);
  spec.set_cache_dir(MakeTempDir());
  absl::StatusOr<TokenDataset> ds = TokenDataset::Open(spec);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->vocab_size(), 65);
  EXPECT_EQ(ds->train_size(), 1003854);
  EXPECT_EQ(ds->val_size(), 111540);
  EXPECT_EQ(ds->NumWindows(Split::kTrain, 1024), 1002830);
  EXPECT_EQ(ds->NumWindows(Split::kVal, 1024), 110516);
  // Ids follow sorted(set(text)): '\n' = 0, ' ' = 1, 'A' = 13, 'a' = 39.
  EXPECT_EQ(*ds->tokenizer().Encode("\n A a"), (std::vector<uint32_t>{0, 1, 13, 1, 39}));
  EXPECT_EQ(ds->at(Split::kTrain, 0), *ds->tokenizer().Encode("F")->data());  // "First Citizen"
}

}  // namespace
}  // namespace gauntlet
