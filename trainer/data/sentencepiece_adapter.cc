#include "trainer/data/sentencepiece_adapter.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <mutex>

// The plugin's bytes (sentencepiece_plugin_blob.cc, generated).
extern const unsigned char kGauntletSentencePiecePlugin[];
extern const std::size_t kGauntletSentencePiecePlugin_size;

namespace gauntlet {
namespace spm {
namespace {

constexpr size_t kErrorSize = 1024;

struct Plugin {
  using TrainFn = int (*)(const char* const*, const size_t*, size_t, const char* const*,
                          const char* const*, size_t, void (*)(void*, const char*, size_t), void*,
                          char*, size_t);
  using LoadFn = void* (*)(const char*, size_t, char*, size_t);
  using FreeFn = void (*)(void*);
  using IntFn = int (*)(const void*);
  using EncodeFn = int (*)(const void*, const char*, size_t, void (*)(void*, const int*, size_t),
                           void*, char*, size_t);
  using DecodeFn = int (*)(const void*, const int*, size_t, void (*)(void*, const char*, size_t),
                           void*, char*, size_t);
  TrainFn train = nullptr;
  LoadFn load = nullptr;
  FreeFn free = nullptr;
  IntFn size = nullptr;
  IntFn eos_id = nullptr;
  EncodeFn encode = nullptr;
  DecodeFn decode = nullptr;
  std::string error;  // why loading failed; empty when loaded
};

// Loads the embedded plugin once per process: written to an anonymous memory file, so nothing
// has to be installed beside the binary, and opened with RTLD_DEEPBIND | RTLD_LOCAL.
const Plugin& GetPlugin() {
  static Plugin* plugin = [] {
    auto* p = new Plugin();
    const int fd = memfd_create("gauntlet-sentencepiece", MFD_CLOEXEC);
    if (fd < 0) {
      p->error = std::string("memfd_create: ") + std::strerror(errno);
      return p;
    }
    size_t done = 0;
    while (done < kGauntletSentencePiecePlugin_size) {
      const ssize_t w = ::write(fd, kGauntletSentencePiecePlugin + done,
                                kGauntletSentencePiecePlugin_size - done);
      if (w <= 0) {
        p->error = "writing the SentencePiece plugin failed";
        ::close(fd);
        return p;
      }
      done += static_cast<size_t>(w);
    }
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    // The memory file stays open: dlopen maps it, and the process keeps it for its lifetime.
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (handle == nullptr) {
      const char* why = dlerror();
      p->error = std::string("loading SentencePiece (is libsentencepiece0 installed?): ") +
                 (why != nullptr ? why : "unknown error");
      return p;
    }
    p->train = reinterpret_cast<Plugin::TrainFn>(dlsym(handle, "gauntlet_spm_train"));
    p->load = reinterpret_cast<Plugin::LoadFn>(dlsym(handle, "gauntlet_spm_load"));
    p->free = reinterpret_cast<Plugin::FreeFn>(dlsym(handle, "gauntlet_spm_free"));
    p->size = reinterpret_cast<Plugin::IntFn>(dlsym(handle, "gauntlet_spm_size"));
    p->eos_id = reinterpret_cast<Plugin::IntFn>(dlsym(handle, "gauntlet_spm_eos_id"));
    p->encode = reinterpret_cast<Plugin::EncodeFn>(dlsym(handle, "gauntlet_spm_encode"));
    p->decode = reinterpret_cast<Plugin::DecodeFn>(dlsym(handle, "gauntlet_spm_decode"));
    if (!p->train || !p->load || !p->free || !p->size || !p->eos_id || !p->encode || !p->decode) {
      p->error = "the SentencePiece plugin lacks an entry point";
    }
    return p;
  }();
  return *plugin;
}

void AppendBytes(void* context, const char* data, size_t n) {
  static_cast<std::string*>(context)->append(data, n);
}

void AppendIds(void* context, const int* ids, size_t n) {
  auto* out = static_cast<std::vector<int>*>(context);
  out->insert(out->end(), ids, ids + n);
}

}  // namespace

bool Train(const std::vector<std::string>& lines,
           const std::vector<std::pair<std::string, std::string>>& options, std::string* model,
           std::string* error) {
  const Plugin& plugin = GetPlugin();
  if (!plugin.error.empty()) {
    *error = plugin.error;
    return false;
  }
  std::vector<const char*> line_data;
  std::vector<size_t> line_sizes;
  for (const std::string& line : lines) {
    line_data.push_back(line.data());
    line_sizes.push_back(line.size());
  }
  std::vector<const char*> keys, values;
  for (const auto& [key, value] : options) {
    keys.push_back(key.c_str());
    values.push_back(value.c_str());
  }
  char why[kErrorSize] = "";
  model->clear();
  if (!plugin.train(line_data.data(), line_sizes.data(), lines.size(), keys.data(), values.data(),
                    keys.size(), AppendBytes, model, why, sizeof(why))) {
    *error = why;
    return false;
  }
  return true;
}

Model::Model(void* handle)
    : handle_(handle), size_(GetPlugin().size(handle)), eos_id_(GetPlugin().eos_id(handle)) {}

Model::~Model() { GetPlugin().free(handle_); }

std::shared_ptr<const Model> Model::Load(const std::string& model_proto, std::string* error) {
  const Plugin& plugin = GetPlugin();
  if (!plugin.error.empty()) {
    *error = plugin.error;
    return nullptr;
  }
  char why[kErrorSize] = "";
  void* handle = plugin.load(model_proto.data(), model_proto.size(), why, sizeof(why));
  if (handle == nullptr) {
    *error = why;
    return nullptr;
  }
  return std::shared_ptr<const Model>(new Model(handle));
}

bool Model::Encode(std::string_view text, std::vector<int>* ids, std::string* error) const {
  char why[kErrorSize] = "";
  ids->clear();
  if (!GetPlugin().encode(handle_, text.data(), text.size(), AppendIds, ids, why, sizeof(why))) {
    *error = why;
    return false;
  }
  return true;
}

bool Model::Decode(const std::vector<int>& ids, std::string* text, std::string* error) const {
  char why[kErrorSize] = "";
  text->clear();
  if (!GetPlugin().decode(handle_, ids.data(), ids.size(), AppendBytes, text, why, sizeof(why))) {
    *error = why;
    return false;
  }
  return true;
}

}  // namespace spm
}  // namespace gauntlet
