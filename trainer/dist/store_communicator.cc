#include "trainer/dist/store_communicator.h"

#include <chrono>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace gauntlet {

struct StoreCommunicator::Op {
  std::function<void(const std::string&)> fn;
  std::string key;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;          // guarded by mu
  absl::Status status;        // guarded by mu
};

class StoreCommunicator::StoreWork : public Work {
 public:
  explicit StoreWork(std::shared_ptr<Op> op) : op_(std::move(op)) {}
  absl::Status Wait() override {
    std::unique_lock<std::mutex> lock(op_->mu);
    op_->cv.wait(lock, [this] { return op_->done; });
    return op_->status;
  }

 private:
  std::shared_ptr<Op> op_;
};

namespace {

std::vector<uint8_t> TensorBytes(const torch::Tensor& t) {
  const auto* data = static_cast<const uint8_t*>(t.data_ptr());
  return std::vector<uint8_t>(data, data + t.nbytes());
}

void CopyBytesInto(const std::vector<uint8_t>& bytes, torch::Tensor& t, const std::string& key) {
  TORCH_CHECK(bytes.size() == t.nbytes(), "collective ", key, ": peer sent ", bytes.size(),
              " bytes, expected ", t.nbytes(), " (ranks issued mismatched collectives)");
  std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
}

absl::Status CheckTensor(const torch::Tensor& t) {
  if (!t.defined() || !t.device().is_cpu() || !t.is_contiguous()) {
    return absl::InvalidArgumentError(
        "StoreCommunicator needs a defined, contiguous CPU tensor");
  }
  return absl::OkStatus();
}

class DoneWork : public Work {
 public:
  explicit DoneWork(absl::Status status) : status_(std::move(status)) {}
  absl::Status Wait() override { return status_; }

 private:
  absl::Status status_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<StoreCommunicator>> StoreCommunicator::Create(
    c10::intrusive_ptr<c10d::Store> store, int rank, int world_size, std::string prefix) {
  if (!store) return absl::InvalidArgumentError("StoreCommunicator: store is null");
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("StoreCommunicator: rank ", rank, " is not in [0, ", world_size, ")"));
  }
  c10::intrusive_ptr<c10d::Store> own;
  try {
    // The background thread gets its own connection so it never interleaves with the caller's
    // store traffic (rendezvous, NCCL id exchange).
    own = store->clone();
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("StoreCommunicator: cloning store: ", e.what()));
  }
  return std::unique_ptr<StoreCommunicator>(
      new StoreCommunicator(std::move(store), std::move(own), rank, world_size, std::move(prefix)));
}

StoreCommunicator::StoreCommunicator(c10::intrusive_ptr<c10d::Store> caller_store,
                                     c10::intrusive_ptr<c10d::Store> store, int rank,
                                     int world_size, std::string prefix)
    : caller_store_(std::move(caller_store)),
      store_(std::move(store)), rank_(rank), world_size_(world_size), prefix_(std::move(prefix)) {
  thread_ = std::thread([this] { Loop(); });
}

StoreCommunicator::~StoreCommunicator() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

absl::Status StoreCommunicator::Finish() {
  if (world_size_ == 1) return absl::OkStatus();
  // Rank 0's process hosts the TCPStore server, and the last rank out of a collective deletes its
  // keys through it: rank 0 must not exit (taking the server down) before every rank is done.
  try {
    const std::string finished = absl::StrCat(prefix_, "/finished");
    store_->add(finished, 1);
    if (rank_ != 0) return absl::OkStatus();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (store_->add(finished, 0) < world_size_) {
      if (std::chrono::steady_clock::now() > deadline) {
        return absl::DeadlineExceededError("Finish: not every rank finished within 30 s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("Finish: ", e.what()));
  }
  return absl::OkStatus();
}

std::unique_ptr<Work> StoreCommunicator::Enqueue(std::function<void(const std::string&)> fn) {
  auto op = std::make_shared<Op>();
  op->fn = std::move(fn);
  {
    std::lock_guard<std::mutex> lock(mu_);
    op->key = absl::StrCat(prefix_, "/", next_seq_++);
    queue_.push_back(op);
  }
  cv_.notify_all();
  return std::make_unique<StoreWork>(op);
}

void StoreCommunicator::Loop() {
  for (;;) {
    std::shared_ptr<Op> op;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      op = queue_.front();
      queue_.pop_front();
    }
    absl::Status status;
    try {
      op->fn(op->key);
    } catch (const std::exception& e) {
      // Store timeouts and lost peers surface here (c10::DistNetworkError, c10::DistStoreError).
      status = absl::UnavailableError(absl::StrCat("collective ", op->key, ": ", e.what()));
    }
    {
      std::lock_guard<std::mutex> lock(op->mu);
      op->status = std::move(status);
      op->done = true;
    }
    op->cv.notify_all();
  }
}

std::unique_ptr<Work> StoreCommunicator::AllReduceSum(torch::Tensor tensor) {
  if (absl::Status s = CheckTensor(tensor); !s.ok()) return std::make_unique<DoneWork>(s);
  return Enqueue([this, tensor](const std::string& key) { DoAllReduce(key, tensor); });
}

absl::Status StoreCommunicator::Broadcast(torch::Tensor tensor, int root) {
  if (absl::Status s = CheckTensor(tensor); !s.ok()) return s;
  if (root < 0 || root >= world_size_) {
    return absl::InvalidArgumentError(absl::StrCat("Broadcast: root ", root, " out of range"));
  }
  return Enqueue([this, tensor, root](const std::string& key) { DoBroadcast(key, tensor, root); })
      ->Wait();
}

absl::Status StoreCommunicator::Barrier() {
  return Enqueue([this](const std::string& key) { DoBarrier(key); })->Wait();
}

void StoreCommunicator::DoAllReduce(const std::string& key, torch::Tensor tensor) {
  if (world_size_ == 1) return;
  store_->set(absl::StrCat(key, "/", rank_), TensorBytes(tensor));
  std::vector<std::string> keys;
  for (int r = 0; r < world_size_; ++r) keys.push_back(absl::StrCat(key, "/", r));
  store_->wait(keys);
  const std::vector<std::vector<uint8_t>> values = store_->multiGet(keys);
  // Sum in rank order from rank 0's values: the same expression, hence the same bits, everywhere.
  torch::NoGradGuard no_grad;
  torch::Tensor peer = torch::empty_like(tensor);
  CopyBytesInto(values[0], tensor, key);
  for (int r = 1; r < world_size_; ++r) {
    CopyBytesInto(values[r], peer, key);
    tensor.add_(peer);
  }
  Release(key);
}

void StoreCommunicator::DoBroadcast(const std::string& key, torch::Tensor tensor, int root) {
  if (world_size_ == 1) return;
  const std::string data_key = absl::StrCat(key, "/", root);
  if (rank_ == root) {
    store_->set(data_key, TensorBytes(tensor));
  } else {
    CopyBytesInto(store_->get(data_key), tensor, key);  // get() waits for the key
  }
  Release(key);
}

void StoreCommunicator::DoBarrier(const std::string& key) {
  if (world_size_ == 1) return;
  const std::string arrived = absl::StrCat(key, "/arrived");
  const std::string open = absl::StrCat(key, "/open");
  if (store_->add(arrived, 1) == world_size_) store_->set(open, std::vector<uint8_t>{1});
  store_->wait({open});
  Release(key);
}

void StoreCommunicator::Release(const std::string& key) {
  // The last rank to finish with the collective deletes its keys so the store stays small over
  // millions of steps.
  if (store_->add(absl::StrCat(key, "/read"), 1) != world_size_) return;
  for (int r = 0; r < world_size_; ++r) store_->deleteKey(absl::StrCat(key, "/", r));
  for (const char* suffix : {"/arrived", "/open", "/read"}) {
    store_->deleteKey(absl::StrCat(key, suffix));
  }
}

}  // namespace gauntlet
