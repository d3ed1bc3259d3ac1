#include "trainer/data/token_dataset.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gauntlet/v1/spec.pb.h"
#include "trainer/data/atomic_file.h"
#include "trainer/data/corpus.h"
#include "trainer/data/sha256.h"

namespace gauntlet {
namespace {

// Cache file layout (little-endian, native on every machine we target):
//   Header (104 bytes) | serialized tokenizer | zero padding to 8 bytes | tokens
// Bumping kFormatVersion changes every cache key, so old files are simply never looked up.
constexpr char kMagic[16] = "GAUNTLET-TOKENS";
constexpr uint32_t kFormatVersion = 1;
constexpr double kDefaultValFraction = 0.1;

struct Header {
  char magic[16];
  uint32_t version;
  uint32_t token_bytes;
  uint64_t num_tokens;
  uint64_t tokenizer_bytes;
  char content_hash[64];  // hex sha256, as in the file name: guards against a misnamed file
};
static_assert(sizeof(Header) == 104, "cache header layout changed");

uint64_t TokensOffset(uint64_t tokenizer_bytes) {
  return (sizeof(Header) + tokenizer_bytes + 7) / 8 * 8;
}

}  // namespace

// A read-only memory map of a whole file.
class TokenDataset::Mapping {
 public:
  static absl::StatusOr<std::shared_ptr<const Mapping>> Open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= 0) {
      ::close(fd);
      return absl::DataLossError(absl::StrCat("empty or unreadable cache file ", path));
    }
    void* data = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);  // the mapping keeps the file alive
    if (data == MAP_FAILED) {
      return absl::UnavailableError(absl::StrCat("cannot mmap ", path, ": ", std::strerror(errno)));
    }
    return std::shared_ptr<const Mapping>(
        new Mapping(static_cast<const uint8_t*>(data), static_cast<size_t>(st.st_size)));
  }
  ~Mapping() { munmap(const_cast<uint8_t*>(data_), size_); }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  Mapping(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  const uint8_t* data_;
  size_t size_;
};

namespace {

// Tokenizes `corpus` into a fresh cache file at `path`.
absl::Status BuildCache(const std::string& path, const std::string& hash,
                        const Tokenizer& tokenizer, std::string_view corpus) {
  absl::StatusOr<AtomicFileWriter> writer = AtomicFileWriter::Open(path);
  if (!writer.ok()) {
    return absl::UnavailableError(
        absl::StrCat("data.cache_dir: cannot write token cache: ", writer.status().message()));
  }
  // Count first so the header can be written before the tokens, in one sequential pass.
  uint64_t num_tokens = 0;
  absl::Status counted =
      tokenizer.EncodeStream(corpus, [&](const uint32_t*, size_t n) { num_tokens += n; });
  if (!counted.ok()) return counted;

  const std::string serialized = tokenizer.Serialize();
  Header header{};
  std::memcpy(header.magic, kMagic, sizeof(kMagic));
  header.version = kFormatVersion;
  header.token_bytes = tokenizer.vocab_size() <= 65536 ? 2 : 4;
  header.num_tokens = num_tokens;
  header.tokenizer_bytes = serialized.size();
  std::memcpy(header.content_hash, hash.data(), sizeof(header.content_hash));
  std::string head(reinterpret_cast<const char*>(&header), sizeof(header));
  head += serialized;
  head.resize(TokensOffset(serialized.size()), '\0');
  if (absl::Status s = writer->Write(head); !s.ok()) return s;

  absl::Status written = absl::OkStatus();
  std::vector<uint16_t> narrow;
  absl::Status encoded = tokenizer.EncodeStream(corpus, [&](const uint32_t* ids, size_t n) {
    if (!written.ok()) return;
    if (header.token_bytes == 4) {
      written = writer->Write(std::string_view(reinterpret_cast<const char*>(ids), n * 4));
      return;
    }
    narrow.assign(ids, ids + n);
    written = writer->Write(std::string_view(reinterpret_cast<const char*>(narrow.data()), n * 2));
  });
  if (!encoded.ok()) return encoded;
  if (!written.ok()) return written;
  return writer->Commit();
}

}  // namespace

const char* SplitName(Split split) { return split == Split::kTrain ? "train" : "val"; }

std::string ResolveCacheDir(const v1::DataSpec& spec) {
  if (!spec.cache_dir().empty()) return spec.cache_dir();
  if (const char* env = std::getenv("GAUNTLET_CACHE"); env != nullptr && *env != '\0') return env;
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return absl::StrCat(home, "/.cache/gauntlet/tokens");
  }
  return "/tmp/gauntlet/tokens";
}

absl::StatusOr<TokenDataset> TokenDataset::Open(const v1::DataSpec& spec) {
  absl::StatusOr<Tokenizer::Kind> kind = Tokenizer::ParseKind(spec.tokenizer());
  if (!kind.ok()) return kind.status();
  const double val_fraction = spec.has_val_fraction() ? spec.val_fraction() : kDefaultValFraction;
  if (!(val_fraction > 0 && val_fraction < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("data.val_fraction: must be in (0, 1), got ", val_fraction));
  }
  absl::StatusOr<std::string> corpus = ReadCorpus(spec);
  if (!corpus.ok()) return corpus.status();

  Sha256 hasher;
  hasher.Update(absl::StrCat("gauntlet-tokens ", kFormatVersion, "\n",
                             *kind == Tokenizer::Kind::kChar ? "char" : "byte", "\n"));
  hasher.Update(*corpus);
  const std::string hash = hasher.FinishHex();
  const std::string path = absl::StrCat(ResolveCacheDir(spec), "/", hash, ".tokens");

  // Validates a mapped cache file; false means "rebuild it".
  const auto valid = [&](const Mapping& m) {
    if (m.size() < sizeof(Header)) return false;
    Header h;
    std::memcpy(&h, m.data(), sizeof(h));
    return std::memcmp(h.magic, kMagic, sizeof(kMagic)) == 0 && h.version == kFormatVersion &&
           (h.token_bytes == 2 || h.token_bytes == 4) &&
           std::memcmp(h.content_hash, hash.data(), sizeof(h.content_hash)) == 0 &&
           m.size() == TokensOffset(h.tokenizer_bytes) + h.num_tokens * h.token_bytes;
  };
  absl::StatusOr<std::shared_ptr<const Mapping>> mapping = Mapping::Open(path);
  if (!mapping.ok() || !valid(**mapping)) {
    const Tokenizer tokenizer =
        *kind == Tokenizer::Kind::kChar ? Tokenizer::Char(*corpus) : Tokenizer::Byte();
    if (absl::Status s = BuildCache(path, hash, tokenizer, *corpus); !s.ok()) return s;
    mapping = Mapping::Open(path);
    if (!mapping.ok()) return mapping.status();
    if (!valid(**mapping)) {
      return absl::DataLossError(
          absl::StrCat("token cache ", path, " is invalid after writing it"));
    }
  }
  corpus->clear();
  corpus->shrink_to_fit();

  Header header;
  std::memcpy(&header, (*mapping)->data(), sizeof(header));
  absl::StatusOr<Tokenizer> tokenizer = Tokenizer::Deserialize(std::string_view(
      reinterpret_cast<const char*>((*mapping)->data()) + sizeof(Header), header.tokenizer_bytes));
  if (!tokenizer.ok()) {
    return absl::DataLossError(
        absl::StrCat("token cache ", path, ": ", tokenizer.status().message()));
  }

  const int64_t total = static_cast<int64_t>(header.num_tokens);
  // floor((1 - f) * N), as the reference's int(0.9 * len(text)).
  const int64_t train = static_cast<int64_t>(std::floor((1.0 - val_fraction) * total));
  if (train < 1 || train >= total) {
    return absl::InvalidArgumentError(absl::StrCat("data.val_fraction: ", val_fraction, " of ",
                                                   total, " tokens in ", spec.path(),
                                                   " leaves an empty split"));
  }
  TokenDataset dataset;
  dataset.mapping_ = *std::move(mapping);
  dataset.tokenizer_ = std::make_shared<const Tokenizer>(*std::move(tokenizer));
  dataset.tokens_ = dataset.mapping_->data() + TokensOffset(header.tokenizer_bytes);
  dataset.token_bytes_ = static_cast<int>(header.token_bytes);
  dataset.train_size_ = train;
  dataset.val_size_ = total - train;
  dataset.content_hash_ = hash;
  dataset.cache_path_ = path;
  dataset.corpus_path_ = spec.path();
  return dataset;
}

uint32_t TokenDataset::at(Split split, int64_t i) const {
  const int64_t index = split == Split::kTrain ? i : train_size_ + i;
  if (token_bytes_ == 2) {
    uint16_t v;
    std::memcpy(&v, tokens_ + 2 * index, 2);
    return v;
  }
  uint32_t v;
  std::memcpy(&v, tokens_ + 4 * index, 4);
  return v;
}

absl::Status TokenDataset::CopyWindow(Split split, int64_t start, int64_t length,
                                      int64_t* out) const {
  if (start < 0 || length < 0 || start + length > size(split)) {
    return absl::OutOfRangeError(absl::StrCat("window [", start, ", ", start + length,
                                              ") is outside the ", SplitName(split), " split of ",
                                              size(split), " tokens"));
  }
  const int64_t base = split == Split::kTrain ? start : train_size_ + start;
  if (token_bytes_ == 2) {
    const auto* p = reinterpret_cast<const uint16_t*>(tokens_) + base;
    for (int64_t i = 0; i < length; ++i) out[i] = p[i];
  } else {
    const auto* p = reinterpret_cast<const uint32_t*>(tokens_) + base;
    for (int64_t i = 0; i < length; ++i) out[i] = p[i];
  }
  return absl::OkStatus();
}

int64_t TokenDataset::NumWindows(Split split, int64_t seq_len) const {
  return std::max<int64_t>(0, size(split) - seq_len);
}

absl::Status TokenDataset::CheckWindow(Split split, int64_t seq_len) const {
  if (seq_len < 1) {
    return absl::InvalidArgumentError(absl::StrCat("model.seq_len: must be >= 1, got ", seq_len));
  }
  if (NumWindows(split, seq_len) > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "data.path: the ", SplitName(split), " split of ", corpus_path_, " has ", size(split),
      " tokens, fewer than one window of model.seq_len + 1 = ", seq_len + 1));
}

}  // namespace gauntlet
