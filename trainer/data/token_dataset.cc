#include "trainer/data/token_dataset.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <mutex>
#include <queue>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gauntlet/v1/spec.pb.h"
#include "trainer/data/atomic_file.h"
#include "trainer/data/corpus.h"
#include "trainer/data/sha256.h"

namespace gauntlet {
namespace {

// Cache file layout (little-endian, native on every machine we target):
//   Header | serialized tokenizer | sources table (text) | zero padding to 8 bytes | tokens
// where tokens are every source's train tokens, then every source's val tokens.
// Bumping kFormatVersion changes every cache key, so old files are simply never looked up.
constexpr char kMagic[16] = "GAUNTLET-TOKENS";
constexpr uint32_t kFormatVersion = 2;
constexpr double kDefaultValFraction = 0.1;
constexpr int kDefaultVocabSize = 8192;
constexpr int64_t kDefaultSampleBytes = 16 << 20;
// SentencePiece skips longer lines when training; so does the sampler.
constexpr size_t kMaxSampleLine = 16384;
// Documents are encoded in units of about this many bytes, cut after a newline.
constexpr size_t kUnitBytes = 1 << 20;

struct Header {
  char magic[16];
  uint32_t version;
  uint32_t token_bytes;
  uint64_t num_tokens;
  uint64_t train_tokens;
  uint64_t tokenizer_bytes;
  uint64_t sources_bytes;
  char content_hash[64];  // hex sha256, as in the file name: guards against a misnamed file
};
static_assert(sizeof(Header) == 120, "cache header layout changed");

uint64_t TokensOffset(const Header& h) {
  return (sizeof(Header) + h.tokenizer_bytes + h.sources_bytes + 7) / 8 * 8;
}

// splitmix64's finaliser: a cheap, well-mixed 64-bit hash step.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
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

enum Target { kAllPart = 0, kTrainPart = 1, kValPart = 2 };

// Whether a document belongs to the validation split: a hash of its name, so the validation set
// is the same for every variant, seed and tokenizer, and does not depend on the other documents.
bool IsValDocument(const std::string& name, double val_fraction) {
  Sha256 hasher;
  hasher.Update("gauntlet-split\n");
  hasher.Update(name);
  const std::array<uint8_t, 32> digest = hasher.Finish();
  uint64_t x = 0;
  for (int i = 0; i < 8; ++i) x = (x << 8) | digest[i];
  return static_cast<double>(x >> 11) * 0x1.0p-53 < val_fraction;
}

struct SourcePlan {
  CorpusSource corpus;
  std::string name;
  double weight = 1;
};

// Cuts a document's pieces into units that end after a newline (or, failing one within a unit, at
// a UTF-8 lead byte), so every tokenizer sees whole characters and SentencePiece whole lines.
class Unitizer {
 public:
  // Calls emit(unit, doc_end) for each unit; the last one of a document has doc_end = true (and
  // may be empty).
  template <typename Emit>
  void Add(std::string_view bytes, bool end, Emit&& emit) {
    pending_.append(bytes.data(), bytes.size());
    while (pending_.size() >= kUnitBytes) {
      size_t cut = pending_.rfind('\n', kUnitBytes - 1);
      if (cut != std::string::npos) {
        ++cut;
      } else {
        cut = kUnitBytes;
        while (cut > 1 && (static_cast<uint8_t>(pending_[cut]) & 0xC0) == 0x80) --cut;
      }
      emit(std::string(pending_, 0, cut), false);
      pending_.erase(0, cut);
    }
    if (end) {
      emit(std::move(pending_), true);
      pending_.clear();
    }
  }

 private:
  std::string pending_;
};

// A uniform, deterministic sample of lines under a byte budget for training a subword model: the
// lines with the smallest hashes of (document number, line number), kept in a bounded heap.
class LineSampler {
 public:
  explicit LineSampler(int64_t budget) : budget_(budget) {}

  void StartDocument(uint64_t document) {
    document_ = document;
    line_ = 0;
    carry_.clear();
    skipping_ = false;
  }
  // `offset` is the byte offset of bytes[0] within its source.
  void Add(int source, int64_t offset, std::string_view bytes, bool end) {
    size_t start = 0;
    while (start <= bytes.size()) {
      const size_t newline = bytes.find('\n', start);
      const size_t stop = newline == std::string_view::npos ? bytes.size() : newline;
      if (carry_.empty() && !skipping_) line_offset_ = offset + static_cast<int64_t>(start);
      if (!skipping_) {
        if (carry_.size() + (stop - start) > kMaxSampleLine) {
          skipping_ = true;
          carry_.clear();
        } else {
          carry_.append(bytes.data() + start, stop - start);
        }
      }
      if (newline == std::string_view::npos) break;
      Offer(source);
      start = newline + 1;
    }
    if (end) Offer(source);
  }
  // The sampled lines of sources s that start before limit[s] bytes, in hash order.
  std::vector<std::string> Take(const std::vector<int64_t>& limit) {
    std::vector<Entry> entries;
    while (!heap_.empty()) {
      entries.push_back(std::move(const_cast<Entry&>(heap_.top())));
      heap_.pop();
    }
    std::sort(entries.begin(), entries.end());
    std::vector<std::string> lines;
    for (Entry& e : entries) {
      if (e.offset < limit[e.source]) lines.push_back(std::move(e.line));
    }
    return lines;
  }

 private:
  struct Entry {
    uint64_t priority;
    std::string line;
    int source;
    int64_t offset;
    bool operator<(const Entry& o) const { return priority < o.priority; }
  };
  void Offer(int source) {
    const uint64_t priority = Mix(Mix(document_) ^ line_++);
    const bool skip = skipping_ || carry_.empty();
    skipping_ = false;
    if (skip) {
      carry_.clear();
      return;
    }
    if (bytes_ + static_cast<int64_t>(carry_.size()) > budget_ && !heap_.empty() &&
        priority >= heap_.top().priority) {
      carry_.clear();
      return;
    }
    bytes_ += static_cast<int64_t>(carry_.size());
    heap_.push(Entry{priority, std::move(carry_), source, line_offset_});
    carry_.clear();
    while (bytes_ > budget_ && heap_.size() > 1) {
      bytes_ -= static_cast<int64_t>(heap_.top().line.size());
      heap_.pop();
    }
  }

  int64_t budget_;
  int64_t bytes_ = 0;
  std::priority_queue<Entry> heap_;  // max-heap: the top is the first to drop
  uint64_t document_ = 0;
  uint64_t line_ = 0;
  std::string carry_;
  bool skipping_ = false;
  int64_t line_offset_ = 0;
};

// An anonymous temporary file of tokens in the cache directory (large corpora need not fit in
// memory or /tmp), written sequentially and copied out by offset.
class TokenSpill {
 public:
  static absl::StatusOr<std::unique_ptr<TokenSpill>> Create(const std::string& dir, int width) {
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
      std::string pattern = dir + "/.spill-XXXXXX";
      fd = mkstemp(pattern.data());
      if (fd >= 0) ::unlink(pattern.c_str());
    }
    if (fd < 0) {
      return absl::UnavailableError(absl::StrCat("data.cache_dir: cannot create a temporary file in ",
                                                 dir, ": ", std::strerror(errno)));
    }
    return std::unique_ptr<TokenSpill>(new TokenSpill(fd, width));
  }
  ~TokenSpill() { ::close(fd_); }

  absl::Status Append(const uint32_t* ids, size_t n) {
    if (width_ == 4) {
      buffer_.append(reinterpret_cast<const char*>(ids), n * 4);
    } else {
      for (size_t i = 0; i < n; ++i) {
        const uint16_t v = static_cast<uint16_t>(ids[i]);
        buffer_.append(reinterpret_cast<const char*>(&v), 2);
      }
    }
    count_ += static_cast<int64_t>(n);
    return buffer_.size() >= (4 << 20) ? Flush() : absl::OkStatus();
  }
  absl::Status Flush() {
    for (size_t done = 0; done < buffer_.size();) {
      const ssize_t w = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        return absl::UnavailableError(
            absl::StrCat("data.cache_dir: writing tokens: ", std::strerror(errno)));
      }
      done += static_cast<size_t>(w);
    }
    buffer_.clear();
    return absl::OkStatus();
  }
  // Copies tokens [begin, begin + n) to `out`.
  absl::Status CopyTo(int64_t begin, int64_t n, AtomicFileWriter& out) const {
    std::string block;
    int64_t at = begin * width_;
    int64_t left = n * width_;
    while (left > 0) {
      block.resize(static_cast<size_t>(std::min<int64_t>(left, 4 << 20)));
      const ssize_t r = ::pread(fd_, block.data(), block.size(), at);
      if (r <= 0) {
        if (r < 0 && errno == EINTR) continue;
        return absl::DataLossError("data.cache_dir: reading back temporary tokens failed");
      }
      block.resize(static_cast<size_t>(r));
      if (absl::Status s = out.Write(block); !s.ok()) return s;
      at += r;
      left -= r;
    }
    return absl::OkStatus();
  }
  int64_t count() const { return count_; }

 private:
  TokenSpill(int fd, int width) : fd_(fd), width_(width) {}
  int fd_;
  int width_;
  int64_t count_ = 0;
  std::string buffer_;
};

// A piece of a document bound for one (source, target) spill.
struct Part {
  int source;
  Target target;
  std::string text;
  bool doc_end;
};
struct Batch {
  std::vector<Part> parts;
  std::vector<std::vector<uint32_t>> ids;  // per part
  absl::Status status;
  bool done = false;
};

// Encodes batches on `threads` workers while the caller reads ahead and writes results in order,
// with at most 2 * threads + 2 batches in memory.
class EncodePipeline {
 public:
  EncodePipeline(const Tokenizer& tokenizer, int threads,
                 std::function<absl::Status(const Batch&)> write)
      : tokenizer_(tokenizer), write_(std::move(write)), limit_(2 * static_cast<size_t>(threads) + 2) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Work(); });
  }
  ~EncodePipeline() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    work_ready_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  absl::Status Push(std::unique_ptr<Batch> batch) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      in_order_.push_back(std::move(batch));
      queue_.push_back(in_order_.back().get());
    }
    work_ready_.notify_one();
    return Drain(limit_);
  }
  // Writes every outstanding batch.
  absl::Status Finish() { return Drain(1); }

 private:
  // Writes finished batches in order until fewer than `keep` are outstanding.
  absl::Status Drain(size_t keep) {
    while (true) {
      std::unique_ptr<Batch> front;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (in_order_.empty()) return absl::OkStatus();
        if (in_order_.size() < keep && !in_order_.front()->done) return absl::OkStatus();
        batch_done_.wait(lock, [&] { return in_order_.front()->done; });
        front = std::move(in_order_.front());
        in_order_.pop_front();
      }
      if (!front->status.ok()) return front->status;
      if (absl::Status s = write_(*front); !s.ok()) return s;
    }
  }
  void Work() {
    while (true) {
      Batch* batch;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_ready_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        batch = queue_.front();
        queue_.pop_front();
      }
      batch->ids.resize(batch->parts.size());
      for (size_t i = 0; i < batch->parts.size() && batch->status.ok(); ++i) {
        std::vector<uint32_t>& ids = batch->ids[i];
        batch->status = tokenizer_.EncodeStream(
            batch->parts[i].text,
            [&](const uint32_t* block, size_t n) { ids.insert(ids.end(), block, block + n); });
        if (batch->parts[i].doc_end && tokenizer_.eos_id() >= 0) {
          ids.push_back(static_cast<uint32_t>(tokenizer_.eos_id()));
        }
        std::string().swap(batch->parts[i].text);
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        batch->done = true;
      }
      batch_done_.notify_all();
    }
  }

  const Tokenizer& tokenizer_;
  std::function<absl::Status(const Batch&)> write_;
  const size_t limit_;
  std::mutex mu_;
  std::condition_variable work_ready_, batch_done_;
  std::deque<std::unique_ptr<Batch>> in_order_;  // pushed, not yet written
  std::deque<Batch*> queue_;                     // pushed, not yet taken by a worker
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

std::string FormatDouble(double v) {
  std::ostringstream out;
  out.precision(17);
  out << v;
  return out.str();
}

absl::StatusOr<std::vector<SourcePlan>> PlanSources(const v1::DataSpec& spec) {
  std::vector<SourcePlan> plans;
  if (spec.sources_size() == 0) {
    SourcePlan plan;
    plan.corpus = SourceOf(spec);
    plan.name = spec.path().substr(spec.path().find_last_of('/') + 1);
    plans.push_back(std::move(plan));
    return plans;
  }
  if (!spec.path().empty()) {
    return absl::InvalidArgumentError("data.sources: give data.path or data.sources, not both");
  }
  for (int i = 0; i < spec.sources_size(); ++i) {
    const v1::DataSource& src = spec.sources(i);
    SourcePlan plan;
    plan.corpus.path = src.path();
    plan.corpus.include_suffixes.assign(src.include_suffixes().begin(),
                                        src.include_suffixes().end());
    plan.corpus.max_bytes = src.max_bytes();
    plan.corpus.field = absl::StrCat("data.sources[", i, "]");
    plan.name = src.name().empty() ? src.path().substr(src.path().find_last_of('/') + 1)
                                   : src.name();
    for (char& c : plan.name) {
      if (c == '\n' || c == '\t') c = ' ';
    }
    plan.weight = src.has_weight() ? src.weight() : 1.0;
    if (!(plan.weight > 0) || !std::isfinite(plan.weight)) {
      return absl::InvalidArgumentError(absl::StrCat(plan.corpus.field,
                                                     ".weight: must be > 0, got ", plan.weight));
    }
    for (const SourcePlan& other : plans) {
      if (other.name == plan.name) {
        return absl::InvalidArgumentError(absl::StrCat(
            plan.corpus.field, ".name: \"", plan.name, "\" names two sources"));
      }
    }
    plans.push_back(std::move(plan));
  }
  return plans;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path, const std::string& field) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(field, ": cannot open ", path));
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

std::string SerializeSources(const std::vector<TokenDataset::Source>& sources) {
  std::string out;
  for (const TokenDataset::Source& s : sources) {
    absl::StrAppend(&out, s.train_begin, " ", s.train_size, " ", s.val_begin, " ", s.val_size, " ",
                    s.train_documents, " ", s.val_documents, " ", s.name, "\n");
  }
  return out;
}

absl::StatusOr<std::vector<TokenDataset::Source>> ParseSources(std::string_view text) {
  std::vector<TokenDataset::Source> sources;
  for (absl::string_view line : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    if (line.empty()) continue;
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits(' ', 6));
    TokenDataset::Source s;
    if (f.size() != 7 || !absl::SimpleAtoi(f[0], &s.train_begin) ||
        !absl::SimpleAtoi(f[1], &s.train_size) || !absl::SimpleAtoi(f[2], &s.val_begin) ||
        !absl::SimpleAtoi(f[3], &s.val_size) || !absl::SimpleAtoi(f[4], &s.train_documents) ||
        !absl::SimpleAtoi(f[5], &s.val_documents)) {
      return absl::DataLossError("malformed sources table");
    }
    s.name = std::string(f[6]);
    sources.push_back(std::move(s));
  }
  if (sources.empty()) return absl::DataLossError("empty sources table");
  return sources;
}

void Report(const OpenOptions& options, const char* phase, int64_t done, int64_t total) {
  if (options.progress) options.progress(phase, done, total);
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

absl::StatusOr<TokenDataset> TokenDataset::Open(const v1::DataSpec& spec,
                                                const OpenOptions& options) {
  absl::StatusOr<Tokenizer::Kind> kind = Tokenizer::ParseKind(spec.tokenizer());
  if (!kind.ok()) return kind.status();
  const double val_fraction = spec.has_val_fraction() ? spec.val_fraction() : kDefaultValFraction;
  if (!(val_fraction > 0 && val_fraction < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("data.val_fraction: must be in (0, 1), got ", val_fraction));
  }
  const std::string split = spec.split().empty() ? "position" : spec.split();
  if (split != "position" && split != "document") {
    return absl::InvalidArgumentError(absl::StrCat(
        "data.split: must be \"position\" or \"document\", got \"", spec.split(), "\""));
  }
  const bool by_document = split == "document";
  const int vocab_size = spec.has_vocab_size() ? spec.vocab_size() : kDefaultVocabSize;
  const int64_t sample_bytes =
      spec.has_tokenizer_sample_bytes() ? spec.tokenizer_sample_bytes() : kDefaultSampleBytes;
  if (sample_bytes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("data.tokenizer_sample_bytes: must be >= 1, got ", sample_bytes));
  }
  absl::StatusOr<std::vector<SourcePlan>> plans = PlanSources(spec);
  if (!plans.ok()) return plans.status();
  const int threads = options.num_threads > 0
                          ? options.num_threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const std::string cache_dir = ResolveCacheDir(spec);

  // ---- Pass 1: hash the corpus (document names count when they decide the split); collect the
  // char vocabulary or a sample of training lines on the way.
  std::optional<Tokenizer> given;
  if (*kind == Tokenizer::Kind::kSubword && !spec.tokenizer_model().empty()) {
    absl::StatusOr<std::string> model = ReadWholeFile(spec.tokenizer_model(), "data.tokenizer_model");
    if (!model.ok()) return model.status();
    absl::StatusOr<Tokenizer> t = Tokenizer::FromSentencePieceModel(*std::move(model));
    if (!t.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("data.tokenizer_model: ", spec.tokenizer_model(), ": ", t.status().message()));
    }
    given = *std::move(t);
  }
  const bool sample = *kind == Tokenizer::Kind::kSubword && !given.has_value();
  Sha256 corpus_hasher;
  corpus_hasher.Update(absl::StrCat("gauntlet-corpus ", kFormatVersion, "\nsplit ", split, " ",
                                    FormatDouble(val_fraction), "\n"));
  CharVocabularyBuilder chars;
  LineSampler sampler(sample_bytes);
  std::vector<int64_t> source_bytes(plans->size(), 0);
  int64_t total_bytes = 0;
  uint64_t document_number = 0;
  for (size_t s = 0; s < plans->size(); ++s) {
    corpus_hasher.Update(absl::StrCat("source ", s, "\n"));
    Unitizer unitizer;
    bool in_document = false;
    bool sampled_document = true;
    absl::Status read = ForEachDocumentPiece(
        (*plans)[s].corpus, [&](const std::string& name, std::string_view bytes, bool end) {
          if (!in_document) {
            in_document = true;
            corpus_hasher.Update(by_document ? absl::StrCat("doc ", name, "\n") : "doc\n");
            sampled_document = !by_document || !IsValDocument(name, val_fraction);
            if (sample && sampled_document) sampler.StartDocument(document_number);
            ++document_number;
          }
          corpus_hasher.Update(bytes);
          if (*kind == Tokenizer::Kind::kChar) {
            unitizer.Add(bytes, end, [&](std::string unit, bool) { chars.Add(unit); });
          }
          if (sample && sampled_document) sampler.Add(static_cast<int>(s), source_bytes[s], bytes, end);
          source_bytes[s] += static_cast<int64_t>(bytes.size());
          total_bytes += static_cast<int64_t>(bytes.size());
          if (end) {
            corpus_hasher.Update("\nend\n");
            in_document = false;
          }
          Report(options, "hash", total_bytes, 0);
          return absl::OkStatus();
        });
    if (!read.ok()) return read;
  }
  const std::string corpus_hash = corpus_hasher.FinishHex();

  // ---- The tokenizer: fixed, given, cached or trained.
  std::optional<Tokenizer> tokenizer;
  if (*kind == Tokenizer::Kind::kChar) {
    tokenizer = chars.Build();
  } else if (*kind == Tokenizer::Kind::kByte) {
    tokenizer = Tokenizer::Byte();
  } else if (given.has_value()) {
    tokenizer = *std::move(given);
  } else {
    const std::string model_path = absl::StrCat(
        cache_dir, "/",
        Sha256Hex(absl::StrCat("gauntlet-subword 1\n", corpus_hash, "\n", spec.tokenizer(), " ",
                               vocab_size, " ", sample_bytes, "\n")),
        ".model");
    if (absl::StatusOr<std::string> cached = ReadWholeFile(model_path, "model"); cached.ok()) {
      absl::StatusOr<Tokenizer> t = Tokenizer::FromSentencePieceModel(*std::move(cached));
      if (t.ok() && t->vocab_size() == vocab_size) tokenizer = *std::move(t);
    }
    if (!tokenizer.has_value()) {
      // Position split: only lines in the first (1 - val_fraction) of each source's bytes.
      std::vector<int64_t> limit(plans->size(), INT64_MAX);
      if (!by_document) {
        for (size_t s = 0; s < plans->size(); ++s) {
          limit[s] = static_cast<int64_t>((1.0 - val_fraction) * source_bytes[s]);
        }
      }
      Report(options, "train-tokenizer", 0, 0);
      SubwordOptions subword;
      subword.model_type = spec.tokenizer();
      subword.vocab_size = vocab_size;
      absl::StatusOr<Tokenizer> t = Tokenizer::TrainSubword(sampler.Take(limit), subword);
      if (!t.ok()) return t.status();
      if (absl::Status s = WriteFileAtomically(model_path, t->model_proto()); !s.ok()) {
        return absl::UnavailableError(
            absl::StrCat("data.cache_dir: cannot write the subword model: ", s.message()));
      }
      tokenizer = *std::move(t);
    }
  }

  const std::string serialized = tokenizer->Serialize();
  const std::string hash =
      Sha256Hex(absl::StrCat("gauntlet-tokens ", kFormatVersion, "\n", corpus_hash, "\n",
                             Sha256Hex(serialized), "\n"));
  const std::string path = absl::StrCat(cache_dir, "/", hash, ".tokens");

  // Validates a mapped cache file; false means "rebuild it".
  const auto valid = [&](const Mapping& m) {
    if (m.size() < sizeof(Header)) return false;
    Header h;
    std::memcpy(&h, m.data(), sizeof(h));
    return std::memcmp(h.magic, kMagic, sizeof(kMagic)) == 0 && h.version == kFormatVersion &&
           (h.token_bytes == 2 || h.token_bytes == 4) && h.train_tokens <= h.num_tokens &&
           std::memcmp(h.content_hash, hash.data(), sizeof(h.content_hash)) == 0 &&
           m.size() == TokensOffset(h) + h.num_tokens * h.token_bytes;
  };
  absl::StatusOr<std::shared_ptr<const Mapping>> mapping = Mapping::Open(path);
  if (!mapping.ok() || !valid(**mapping)) {
    // ---- Pass 2: tokenize on every core into per-source spills, then assemble the cache file.
    const int width = tokenizer->vocab_size() <= 65536 ? 2 : 4;
    if (absl::Status s = AtomicFileWriter::Open(path).status(); !s.ok()) {
      return absl::UnavailableError(
          absl::StrCat("data.cache_dir: cannot write token cache: ", s.message()));
    }
    std::vector<std::array<std::unique_ptr<TokenSpill>, 3>> spills(plans->size());
    for (auto& per_source : spills) {
      for (auto& spill : per_source) {
        absl::StatusOr<std::unique_ptr<TokenSpill>> created = TokenSpill::Create(cache_dir, width);
        if (!created.ok()) return created.status();
        spill = *std::move(created);
      }
    }
    std::vector<Source> sources(plans->size());
    int64_t tokenized_bytes = 0;
    absl::Status status = [&]() -> absl::Status {
      EncodePipeline pipeline(*tokenizer, threads, [&](const Batch& batch) -> absl::Status {
        for (size_t i = 0; i < batch.parts.size(); ++i) {
          const Part& part = batch.parts[i];
          absl::Status s = spills[part.source][part.target]->Append(batch.ids[i].data(),
                                                                    batch.ids[i].size());
          if (!s.ok()) return s;
        }
        return absl::OkStatus();
      });
      for (size_t s = 0; s < plans->size(); ++s) {
        auto batch = std::make_unique<Batch>();
        size_t batch_bytes = 0;
        Unitizer unitizer;
        bool in_document = false;
        Target target = kAllPart;
        absl::Status read = ForEachDocumentPiece(
            (*plans)[s].corpus, [&](const std::string& name, std::string_view bytes, bool end) {
              if (!in_document) {
                in_document = true;
                target = !by_document ? kAllPart : IsValDocument(name, val_fraction) ? kValPart : kTrainPart;
                ++(target == kValPart ? sources[s].val_documents : sources[s].train_documents);
              }
              absl::Status pushed;
              unitizer.Add(bytes, end, [&](std::string unit, bool doc_end) {
                batch_bytes += unit.size();
                batch->parts.push_back(Part{static_cast<int>(s), target, std::move(unit), doc_end});
                if (batch_bytes >= kUnitBytes && pushed.ok()) {
                  pushed = pipeline.Push(std::move(batch));
                  batch = std::make_unique<Batch>();
                  batch_bytes = 0;
                }
              });
              if (end) in_document = false;
              tokenized_bytes += static_cast<int64_t>(bytes.size());
              Report(options, "tokenize", tokenized_bytes, total_bytes);
              return pushed;
            });
        if (!read.ok()) return read;
        if (!batch->parts.empty()) {
          if (absl::Status p = pipeline.Push(std::move(batch)); !p.ok()) return p;
        }
      }
      return pipeline.Finish();
    }();
    if (!status.ok()) return status;

    // Lay out every source's train tokens, then every source's val tokens.
    int64_t train_total = 0, val_total = 0;
    std::vector<std::array<int64_t, 4>> ranges(plans->size());  // spill target, begin, train, val
    for (size_t s = 0; s < plans->size(); ++s) {
      for (auto& spill : spills[s]) {
        if (absl::Status f = spill->Flush(); !f.ok()) return f;
      }
      Source& src = sources[s];
      src.name = (*plans)[s].name;
      if (by_document) {
        src.train_size = spills[s][kTrainPart]->count();
        src.val_size = spills[s][kValPart]->count();
      } else {
        const int64_t n = spills[s][kAllPart]->count();
        // floor((1 - f) * N), as the reference's int(0.9 * len(text)).
        src.train_size = static_cast<int64_t>(std::floor((1.0 - val_fraction) * n));
        src.val_size = n - src.train_size;
      }
      if (src.train_size < 1 || src.val_size < 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            by_document ? "data.split: " : "data.val_fraction: ", (*plans)[s].corpus.path,
            " leaves an empty ", src.train_size < 1 ? "train" : "val", " split (",
            src.train_documents, " train and ", src.val_documents,
            " val documents, val_fraction ", val_fraction, ")",
            by_document ? "; document split needs many documents (or use split: position)" : ""));
      }
      src.train_begin = train_total;
      src.val_begin = val_total;
      train_total += src.train_size;
      val_total += src.val_size;
    }
    absl::StatusOr<AtomicFileWriter> writer = AtomicFileWriter::Open(path);
    if (!writer.ok()) {
      return absl::UnavailableError(
          absl::StrCat("data.cache_dir: cannot write token cache: ", writer.status().message()));
    }
    const std::string table = SerializeSources(sources);
    Header header{};
    std::memcpy(header.magic, kMagic, sizeof(kMagic));
    header.version = kFormatVersion;
    header.token_bytes = static_cast<uint32_t>(width);
    header.num_tokens = static_cast<uint64_t>(train_total + val_total);
    header.train_tokens = static_cast<uint64_t>(train_total);
    header.tokenizer_bytes = serialized.size();
    header.sources_bytes = table.size();
    std::memcpy(header.content_hash, hash.data(), sizeof(header.content_hash));
    std::string head(reinterpret_cast<const char*>(&header), sizeof(header));
    head += serialized;
    head += table;
    head.resize(TokensOffset(header), '\0');
    if (absl::Status w = writer->Write(head); !w.ok()) return w;
    Report(options, "assemble", 0, 0);
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t s = 0; s < plans->size(); ++s) {
        const Source& src = sources[s];
        const TokenSpill& spill = *spills[s][by_document ? (pass == 0 ? kTrainPart : kValPart) : kAllPart];
        const int64_t begin = by_document || pass == 0 ? 0 : src.train_size;
        absl::Status c = spill.CopyTo(begin, pass == 0 ? src.train_size : src.val_size, *writer);
        if (!c.ok()) return c;
      }
    }
    if (absl::Status c = writer->Commit(); !c.ok()) return c;
    mapping = Mapping::Open(path);
    if (!mapping.ok()) return mapping.status();
    if (!valid(**mapping)) {
      return absl::DataLossError(
          absl::StrCat("token cache ", path, " is invalid after writing it"));
    }
  }

  Header header;
  std::memcpy(&header, (*mapping)->data(), sizeof(header));
  const char* base = reinterpret_cast<const char*>((*mapping)->data());
  absl::StatusOr<Tokenizer> loaded =
      Tokenizer::Deserialize(std::string_view(base + sizeof(Header), header.tokenizer_bytes));
  if (!loaded.ok()) {
    return absl::DataLossError(absl::StrCat("token cache ", path, ": ", loaded.status().message()));
  }
  absl::StatusOr<std::vector<Source>> sources = ParseSources(
      std::string_view(base + sizeof(Header) + header.tokenizer_bytes, header.sources_bytes));
  if (!sources.ok() || sources->size() != plans->size()) {
    return absl::DataLossError(absl::StrCat("token cache ", path, ": bad sources table"));
  }
  double weight_sum = 0;
  for (const SourcePlan& p : *plans) weight_sum += p.weight;
  for (size_t s = 0; s < plans->size(); ++s) (*sources)[s].weight = (*plans)[s].weight / weight_sum;

  TokenDataset dataset;
  dataset.mapping_ = *std::move(mapping);
  dataset.tokenizer_ = std::make_shared<const Tokenizer>(*std::move(loaded));
  dataset.sources_ = std::make_shared<const std::vector<Source>>(*std::move(sources));
  dataset.tokens_ = dataset.mapping_->data() + TokensOffset(header);
  dataset.token_bytes_ = static_cast<int>(header.token_bytes);
  dataset.train_size_ = static_cast<int64_t>(header.train_tokens);
  dataset.val_size_ = static_cast<int64_t>(header.num_tokens - header.train_tokens);
  dataset.content_hash_ = hash;
  dataset.cache_path_ = path;
  dataset.corpus_path_ =
      spec.sources_size() == 0 ? spec.path() : absl::StrCat(spec.sources_size(), " sources");
  return dataset;
}

double TokenDataset::EpochsFor(int64_t tokens) const {
  double epochs = 0;
  for (const Source& s : *sources_) {
    if (s.train_size > 0) epochs = std::max(epochs, s.weight * tokens / s.train_size);
  }
  return epochs;
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
