#include "trainer/data/test_util.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "gauntlet/v1/spec.pb.h"

namespace gauntlet {
namespace testing {

std::string MakeTempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string pattern = absl::StrCat(base != nullptr ? base : "/tmp", "/gauntlet-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return pattern;
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out << contents;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status WriteTarball(const std::string& path,
                          const std::vector<std::pair<std::string, std::string>>& entries,
                          const std::string& compression) {
  struct Closer {
    void operator()(archive* a) const { archive_write_free(a); }
  };
  std::unique_ptr<archive, Closer> a(archive_write_new());
  archive_write_set_format_pax_restricted(a.get());
  int r = ARCHIVE_OK;
  if (compression == "gzip") {
    r = archive_write_add_filter_gzip(a.get());
  } else if (compression == "xz") {
    r = archive_write_add_filter_xz(a.get());
  } else if (compression != "none") {
    return absl::InvalidArgumentError("compression: " + compression);
  }
  if (r != ARCHIVE_OK || archive_write_open_filename(a.get(), path.c_str()) != ARCHIVE_OK) {
    return absl::InternalError(archive_error_string(a.get()));
  }
  for (const auto& [name, contents] : entries) {
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> entry(archive_entry_new(),
                                                                   archive_entry_free);
    archive_entry_set_pathname(entry.get(), name.c_str());
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(contents.size()));
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    archive_entry_set_perm(entry.get(), 0644);
    if (archive_write_header(a.get(), entry.get()) != ARCHIVE_OK ||
        archive_write_data(a.get(), contents.data(), contents.size()) !=
            static_cast<la_ssize_t>(contents.size())) {
      return absl::InternalError(archive_error_string(a.get()));
    }
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) {
    return absl::InternalError(archive_error_string(a.get()));
  }
  return absl::OkStatus();
}

std::string RandomText(size_t n, unsigned seed, const std::string& alphabet) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  std::string text(n, ' ');
  for (char& c : text) c = alphabet[pick(gen)];
  return text;
}

std::string WordText(size_t n, unsigned seed) {
  static const char* kWords[] = {"the",    "of",     "and",    "to",       "in",    "a",
                                 "is",     "that",   "for",    "it",       "as",    "with",
                                 "kernel", "memory", "process", "function", "value", "return",
                                 "python", "module", "system", "package",  "debian", "thread",
                                 "lord",   "unto",   "shall",  "thee",     "data",  "2024"};
  std::mt19937 gen(seed);
  std::uniform_int_distribution<size_t> word(0, sizeof(kWords) / sizeof(kWords[0]) - 1);
  std::uniform_int_distribution<int> line_words(3, 14);
  std::string text;
  while (text.size() < n) {
    const int k = line_words(gen);
    for (int i = 0; i < k; ++i) {
      if (i > 0) text += ' ';
      text += kWords[word(gen)];
    }
    text += gen() % 7 == 0 ? ".\n\n" : ".\n";
  }
  return text;
}

absl::StatusOr<TokenDataset> OpenMixtureDataset(
    const std::vector<std::pair<std::string, double>>& text_and_weight, int documents,
    double val_fraction) {
  const std::string dir = MakeTempDir();
  v1::DataSpec spec;
  spec.set_cache_dir(dir + "/cache");
  spec.set_tokenizer("char");
  spec.set_split("document");
  spec.set_val_fraction(val_fraction);
  for (size_t s = 0; s < text_and_weight.size(); ++s) {
    const std::string& text = text_and_weight[s].first;
    const std::string root = absl::StrCat(dir, "/source", s);
    const size_t per_doc = text.size() / documents;
    for (int d = 0; d < documents; ++d) {
      const size_t end = d + 1 == documents ? text.size() : (d + 1) * per_doc;
      WriteFile(absl::StrCat(root, "/doc", d, ".txt"), text.substr(d * per_doc, end - d * per_doc));
    }
    v1::DataSource* source = spec.add_sources();
    source->set_name(absl::StrCat("source", s));
    source->set_path(root);
    source->set_weight(text_and_weight[s].second);
  }
  return TokenDataset::Open(spec);
}

absl::StatusOr<TokenDataset> OpenTextDataset(const std::string& text, const std::string& tokenizer,
                                             double val_fraction) {
  const std::string dir = MakeTempDir();
  WriteFile(dir + "/corpus.txt", text);
  v1::DataSpec spec;
  spec.set_path(dir + "/corpus.txt");
  spec.set_cache_dir(dir + "/cache");
  spec.set_tokenizer(tokenizer);
  spec.set_val_fraction(val_fraction);
  return TokenDataset::Open(spec);
}

absl::StatusOr<std::string> TinyShakespearePath() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  const std::string path = absl::StrCat(
      srcdir != nullptr ? srcdir : ".", "/", workspace != nullptr ? workspace : "gauntlet",
      "/data/tinyshakespeare/input.txt");
  if (!std::filesystem::exists(path)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is missing: add \"//data:tinyshakespeare\" to the test's data"));
  }
  return path;
}

}  // namespace testing
}  // namespace gauntlet
