// The only code that touches libsentencepiece, built as a small shared object that
// sentencepiece_adapter.cc embeds and dlopens with RTLD_DEEPBIND. Why: Debian's libsentencepiece
// exports its own bundled protobuf-lite 3.14, which collides with the process's libprotobuf 3.21
// (protobuf aborts on the version check); deep binding keeps each library on its own copy. The
// interface is plain C so nothing crosses the boundary but bytes and ints.

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

class LineIterator : public sentencepiece::SentenceIterator {
 public:
  LineIterator(const char* const* lines, const size_t* lengths, size_t n)
      : lines_(lines), lengths_(lengths), n_(n) {
    Load();
  }
  bool done() const override { return i_ >= n_; }
  void Next() override {
    ++i_;
    Load();
  }
  const std::string& value() const override { return value_; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  void Load() {
    if (i_ < n_) value_.assign(lines_[i_], lengths_[i_]);
  }
  const char* const* lines_;
  const size_t* lengths_;
  size_t n_;
  size_t i_ = 0;
  std::string value_;
};

int Fail(const sentencepiece::util::Status& s, char* error, size_t error_size) {
  if (error_size > 0) {
    const std::string text = s.ToString();
    const size_t n = std::min(text.size(), error_size - 1);
    std::memcpy(error, text.data(), n);
    error[n] = '\0';
  }
  return 0;
}

using Processor = sentencepiece::SentencePieceProcessor;

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int gauntlet_spm_train(
    const char* const* lines, const size_t* lengths, size_t num_lines, const char* const* keys,
    const char* const* values, size_t num_options, void (*sink)(void*, const char*, size_t),
    void* context, char* error, size_t error_size) {
  std::unordered_map<std::string, std::string> options;
  for (size_t i = 0; i < num_options; ++i) options[keys[i]] = values[i];
  LineIterator it(lines, lengths, num_lines);
  std::string model;
  const sentencepiece::util::Status s =
      sentencepiece::SentencePieceTrainer::Train(options, &it, &model);
  if (!s.ok()) return Fail(s, error, error_size);
  sink(context, model.data(), model.size());
  return 1;
}

__attribute__((visibility("default"))) void* gauntlet_spm_load(const char* model, size_t size,
                                                                char* error, size_t error_size) {
  auto* p = new Processor();
  const sentencepiece::util::Status s = p->LoadFromSerializedProto(std::string(model, size));
  if (!s.ok()) {
    delete p;
    Fail(s, error, error_size);
    return nullptr;
  }
  return p;
}

__attribute__((visibility("default"))) void gauntlet_spm_free(void* processor) {
  delete static_cast<Processor*>(processor);
}

__attribute__((visibility("default"))) int gauntlet_spm_size(const void* processor) {
  return static_cast<const Processor*>(processor)->GetPieceSize();
}

__attribute__((visibility("default"))) int gauntlet_spm_eos_id(const void* processor) {
  return static_cast<const Processor*>(processor)->eos_id();
}

__attribute__((visibility("default"))) int gauntlet_spm_encode(
    const void* processor, const char* text, size_t size,
    void (*sink)(void*, const int*, size_t), void* context, char* error, size_t error_size) {
  std::vector<int> ids;
  const sentencepiece::util::Status s =
      static_cast<const Processor*>(processor)->Encode(std::string_view(text, size), &ids);
  if (!s.ok()) return Fail(s, error, error_size);
  sink(context, ids.data(), ids.size());
  return 1;
}

__attribute__((visibility("default"))) int gauntlet_spm_decode(
    const void* processor, const int* ids, size_t n, void (*sink)(void*, const char*, size_t),
    void* context, char* error, size_t error_size) {
  std::string text;
  const sentencepiece::util::Status s =
      static_cast<const Processor*>(processor)->Decode(std::vector<int>(ids, ids + n), &text);
  if (!s.ok()) return Fail(s, error, error_size);
  sink(context, text.data(), text.size());
  return 1;
}

}  // extern "C"
