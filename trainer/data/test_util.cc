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
