#include "trainer/data/token_dataset.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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
  EXPECT_THAT(TokenDataset::Open(f.spec).status().message(), HasSubstr("empty train split"));
}

TEST(TokenDatasetTest, CacheIsKeyedByContentAndTokenizerAndReused) {
  Fixture f("hello, cache\n");
  ASSERT_TRUE(TokenDataset::Open(f.spec).ok());
  ASSERT_EQ(CacheFiles(f.dir + "/cache").size(), 1u);
  absl::StatusOr<TokenDataset> first = TokenDataset::Open(f.spec);
  ASSERT_TRUE(first.ok());
  const std::string cache = first->cache_path();
  EXPECT_EQ(cache, f.dir + "/cache/" + first->content_hash() + ".tokens");

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

  f.spec.set_tokenizer("gpt2");
  EXPECT_THAT(TokenDataset::Open(f.spec).status().message(), HasSubstr("data.tokenizer"));
  f.spec.set_tokenizer("char");
  f.spec.set_split("sentence");
  EXPECT_THAT(TokenDataset::Open(f.spec).status().message(), HasSubstr("data.split"));
  f.spec.clear_split();
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

// A directory corpus of `n` documents of English-like text.
std::string WriteDocuments(const std::string& root, int n, size_t bytes_each, unsigned seed) {
  for (int d = 0; d < n; ++d) {
    WriteFile(absl::StrCat(root, "/doc", d, ".txt"), testing::WordText(bytes_each, seed + d));
  }
  return root;
}

// Phases reported while opening: a cache hit hashes the corpus and nothing else.
std::vector<std::string> Phases(const v1::DataSpec& spec, absl::StatusOr<TokenDataset>* out,
                                int threads = 0) {
  std::vector<std::string> phases;
  OpenOptions options;
  options.num_threads = threads;
  options.progress = [&](const char* phase, int64_t, int64_t) {
    if (phases.empty() || phases.back() != phase) phases.push_back(phase);
  };
  *out = TokenDataset::Open(spec, options);
  return phases;
}

TEST(TokenDatasetTest, SubwordModelAndTokensAreCachedAndReused) {
  const std::string dir = MakeTempDir();
  v1::DataSpec spec;
  spec.set_path(WriteDocuments(dir + "/docs", 40, 6000, 1));
  spec.set_cache_dir(dir + "/cache");
  spec.set_tokenizer("bpe");
  spec.set_vocab_size(320);
  spec.set_split("document");
  absl::StatusOr<TokenDataset> first;
  EXPECT_THAT(Phases(spec, &first), ::testing::ElementsAre("hash", "train-tokenizer", "tokenize",
                                                           "assemble"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->vocab_size(), 320);
  EXPECT_EQ(first->tokenizer().kind(), Tokenizer::Kind::kSubword);
  // Fewer tokens than bytes, and every document ends with </s>.
  EXPECT_LT(first->total_size(), 40 * 6000 * 7 / 10);
  EXPECT_EQ(first->at(Split::kVal, first->val_size() - 1), 1u);
  std::vector<std::string> files = CacheFiles(dir + "/cache");
  ASSERT_EQ(files.size(), 2u);  // <hash>.model and <hash>.tokens

  // A cache hit: same files, nothing retrained or re-tokenized, same tokens.
  absl::StatusOr<TokenDataset> second;
  EXPECT_THAT(Phases(spec, &second), ::testing::ElementsAre("hash"));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->cache_path(), first->cache_path());
  EXPECT_EQ(CacheFiles(dir + "/cache").size(), 2u);

  // The token cache gone, the cached model is reused: no "train-tokenizer".
  std::filesystem::remove(first->cache_path());
  absl::StatusOr<TokenDataset> third;
  EXPECT_THAT(Phases(spec, &third), ::testing::ElementsAre("hash", "tokenize", "assemble"));
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->content_hash(), first->content_hash());

  // Another vocab_size is another model and another token cache.
  spec.set_vocab_size(330);
  absl::StatusOr<TokenDataset> other = TokenDataset::Open(spec);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE(other->content_hash(), first->content_hash());
  EXPECT_EQ(CacheFiles(dir + "/cache").size(), 4u);

  // A given model file is used as is (tokens keyed by its bytes).
  std::string model_file;
  for (const std::string& name : files) {
    if (absl::EndsWith(name, ".model")) model_file = dir + "/cache/" + name;
  }
  v1::DataSpec given = spec;
  given.clear_vocab_size();
  given.set_tokenizer_model(model_file);
  given.set_cache_dir(dir + "/cache2");
  absl::StatusOr<TokenDataset> from_file;
  EXPECT_THAT(Phases(given, &from_file), ::testing::ElementsAre("hash", "tokenize", "assemble"));
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  EXPECT_EQ(from_file->content_hash(), first->content_hash());
  given.set_tokenizer_model(dir + "/docs/doc0.txt");
  EXPECT_THAT(TokenDataset::Open(given).status().message(), HasSubstr("data.tokenizer_model"));
}

TEST(TokenDatasetTest, TokensDoNotDependOnTheThreadCount) {
  const std::string dir = MakeTempDir();
  v1::DataSpec spec;
  // Documents larger than an encoding unit (1 MiB) too, so units are cut inside documents.
  spec.set_path(WriteDocuments(dir + "/docs", 3, 1100000, 7));
  spec.set_tokenizer("bpe");
  spec.set_vocab_size(300);
  spec.set_tokenizer_sample_bytes(200000);
  std::vector<std::string> bytes;
  for (int threads : {1, 3}) {
    spec.set_cache_dir(absl::StrCat(dir, "/cache", threads));
    absl::StatusOr<TokenDataset> ds;
    Phases(spec, &ds, threads);
    ASSERT_TRUE(ds.ok()) << ds.status();
    bytes.push_back(testing::ReadFile(ds->cache_path()));
  }
  EXPECT_TRUE(bytes[0] == bytes[1]) << "1 and 3 encoding threads wrote different caches";
}

TEST(TokenDatasetTest, DocumentSplitIsByNameAndFixed) {
  const std::string dir = MakeTempDir();
  const std::string root = dir + "/docs";
  // Each document is one distinct character repeated, so its split is visible in the tokens.
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  for (size_t d = 0; d < alphabet.size(); ++d) {
    WriteFile(absl::StrCat(root, "/", std::string(1, alphabet[d]), ".txt"),
              std::string(50 + d, alphabet[d]));
  }
  v1::DataSpec spec;
  spec.set_path(root);
  spec.set_cache_dir(dir + "/cache");
  spec.set_split("document");
  spec.set_val_fraction(0.25);
  absl::StatusOr<TokenDataset> ds = TokenDataset::Open(spec);
  ASSERT_TRUE(ds.ok()) << ds.status();
  const auto chars_of = [&](Split split) {
    std::set<char> seen;
    std::vector<int64_t> ids(ds->size(split));
    EXPECT_TRUE(ds->CopyWindow(split, 0, ds->size(split), ids.data()).ok());
    for (int64_t id : ids) {
      seen.insert((*ds->tokenizer().Decode({static_cast<uint32_t>(id)}))[0]);
    }
    return seen;
  };
  const std::set<char> train = chars_of(Split::kTrain), val = chars_of(Split::kVal);
  // Whole documents: no character (document) on both sides, every document somewhere.
  for (char c : val) EXPECT_EQ(train.count(c), 0u) << c;
  EXPECT_EQ(train.size() + val.size(), alphabet.size());
  EXPECT_GT(val.size(), 5u);
  EXPECT_LT(val.size(), 30u);
  EXPECT_EQ(ds->sources()[0].train_documents + ds->sources()[0].val_documents,
            static_cast<int64_t>(alphabet.size()));
  EXPECT_EQ(ds->sources()[0].val_documents, static_cast<int64_t>(val.size()));

  // The validation documents depend only on names: other tokenizers, other content and more
  // documents keep every existing document on its side.
  WriteFile(root + "/a.txt", "changed content of a");
  WriteFile(root + "/extra.txt", std::string(80, '!'));
  spec.set_tokenizer("byte");
  absl::StatusOr<TokenDataset> again = TokenDataset::Open(spec);
  ASSERT_TRUE(again.ok()) << again.status();
  std::string val_bytes(again->val_size(), '\0');
  for (int64_t i = 0; i < again->val_size(); ++i) val_bytes[i] = static_cast<char>(again->at(Split::kVal, i));
  for (char c : alphabet) {
    if (c == 'a') continue;
    EXPECT_EQ(val.count(c) > 0, val_bytes.find(c) != std::string::npos) << c;
  }

  // One file is one document: it cannot be split.
  spec.set_path(root + "/b.txt");
  EXPECT_THAT(TokenDataset::Open(spec).status().message(), HasSubstr("data.split"));
}

TEST(TokenDatasetTest, MixtureLaysOutSourcesAndNormalisesWeights) {
  absl::StatusOr<TokenDataset> ds = testing::OpenMixtureDataset(
      {{std::string(3000, 'a'), 3.0}, {std::string(6000, 'b'), 1.0}}, 30, 0.2);
  ASSERT_TRUE(ds.ok()) << ds.status();
  ASSERT_EQ(ds->sources().size(), 2u);
  const TokenDataset::Source& a = ds->sources()[0];
  const TokenDataset::Source& b = ds->sources()[1];
  EXPECT_EQ(a.name, "source0");
  EXPECT_DOUBLE_EQ(a.weight, 0.75);
  EXPECT_DOUBLE_EQ(b.weight, 0.25);
  EXPECT_EQ(a.train_begin, 0);
  EXPECT_EQ(b.train_begin, a.train_size);
  EXPECT_EQ(a.val_begin, 0);
  EXPECT_EQ(b.val_begin, a.val_size);
  EXPECT_EQ(a.train_size + b.train_size, ds->train_size());
  EXPECT_EQ(a.val_size + b.val_size, ds->val_size());
  EXPECT_EQ(a.train_size + a.val_size, 3000);
  EXPECT_EQ(b.train_size + b.val_size, 6000);
  EXPECT_EQ(ds->tokenizer().Decode({ds->at(Split::kTrain, a.train_size - 1)}).value(), "a");
  EXPECT_EQ(ds->tokenizer().Decode({ds->at(Split::kTrain, b.train_begin)}).value(), "b");
  EXPECT_EQ(ds->tokenizer().Decode({ds->at(Split::kVal, b.val_begin)}).value(), "b");

  // Epochs: the most-sampled source per token decides.
  const double expected = std::max(0.75 * 1000 / a.train_size, 0.25 * 1000 / b.train_size);
  EXPECT_DOUBLE_EQ(ds->EpochsFor(1000), expected);

  // Both path and sources, bad weights and duplicate names are refused, naming the field.
  v1::DataSpec spec;
  spec.set_path("/x");
  spec.add_sources()->set_path("/y");
  EXPECT_THAT(TokenDataset::Open(spec).status().message(), HasSubstr("data.sources"));
  spec.clear_path();
  spec.mutable_sources(0)->set_weight(-1);
  EXPECT_THAT(TokenDataset::Open(spec).status().message(), HasSubstr("data.sources[0].weight"));
}

TEST(TokenDatasetTest, EpochsOfOneSourceAreTokensOverTrainTokens) {
  absl::StatusOr<TokenDataset> ds = testing::OpenTextDataset(std::string(1000, 'z'));
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ(ds->train_size(), 900);
  EXPECT_DOUBLE_EQ(ds->EpochsFor(450), 0.5);
  EXPECT_DOUBLE_EQ(ds->EpochsFor(2700), 3.0);
}

}  // namespace
}  // namespace gauntlet
