#include "trainer/dist/grad_bucketer.h"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "trainer/dist/store_communicator.h"

namespace gauntlet {
namespace {

// Counts collectives and forwards them to a real communicator.
class CountingCommunicator : public Communicator {
 public:
  explicit CountingCommunicator(Communicator* inner) : inner_(inner) {}
  int rank() const override { return inner_->rank(); }
  int world_size() const override { return inner_->world_size(); }
  std::unique_ptr<Work> AllReduceSum(torch::Tensor t) override {
    ++all_reduces;
    return inner_->AllReduceSum(std::move(t));
  }
  absl::Status Broadcast(torch::Tensor t, int root) override {
    return inner_->Broadcast(std::move(t), root);
  }
  absl::Status Barrier() override { return inner_->Barrier(); }
  std::atomic<int> all_reduces{0};

 private:
  Communicator* inner_;
};

torch::nn::Sequential MakeModel() {
  torch::manual_seed(7);
  return torch::nn::Sequential(torch::nn::Linear(8, 32), torch::nn::Tanh(),
                               torch::nn::Linear(32, 32), torch::nn::Tanh(),
                               torch::nn::Linear(32, 4));
}

// The full batch all ranks together see.
struct Data {
  torch::Tensor x = torch::randn({8, 8}, at::make_generator<at::CPUGeneratorImpl>(1));
  torch::Tensor y = torch::randn({8, 4}, at::make_generator<at::CPUGeneratorImpl>(2));
};

std::vector<c10::intrusive_ptr<c10d::Store>> MakeStores(int world_size) {
  c10d::TCPStoreOptions server_options;
  server_options.port = 0;
  server_options.isServer = true;
  server_options.waitWorkers = false;
  auto server = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", server_options);
  std::vector<c10::intrusive_ptr<c10d::Store>> stores = {server};
  for (int r = 1; r < world_size; ++r) {
    c10d::TCPStoreOptions options;
    options.port = server->getPort();
    stores.push_back(c10::make_intrusive<c10d::TCPStore>("127.0.0.1", options));
  }
  return stores;
}

TEST(GradBucketerTest, BucketsFollowReverseParameterOrderAndSizeCap) {
  auto stores = MakeStores(1);
  auto comm = *StoreCommunicator::Create(stores[0], 0, 1);
  torch::nn::Sequential model = MakeModel();
  // Parameters: w1 (32x8=1 KiB), b1 (128 B), w2 (4 KiB), b2, w3 (512 B), b3 (16 B).
  // Cap 4.5 KiB: [b3, w3, b2] (656 B) + w2 would exceed, so w2 starts a new bucket, etc.
  auto bucketer = *GradBucketer::Create(model->parameters(), comm.get(), 4.5 / 1024.0);
  const std::vector<std::vector<int>> expected = {{5, 4, 3}, {2, 1}, {0}};
  EXPECT_EQ(bucketer->BucketLayout(), expected);
  EXPECT_FALSE(GradBucketer::Create(model->parameters(), comm.get(), 0).ok());
  EXPECT_NE(GradBucketer::Create(model->parameters(), comm.get(), -1)
                .status()
                .message()
                .find("train.bucket_mib"),
            std::string::npos);
}

// Two ranks (threads, each with its own store client) on half the batch each must reach the same
// parameters as one rank on the whole batch, with bit-identical gradients across ranks.
TEST(GradBucketerTest, TwoRanksMatchOneRankOnTheCombinedBatch) {
  constexpr int kWorld = 2;
  constexpr int kSteps = 5;
  Data data;

  torch::nn::Sequential reference = MakeModel();
  {
    torch::optim::AdamW opt(reference->parameters(), torch::optim::AdamWOptions(1e-2));
    for (int step = 0; step < kSteps; ++step) {
      opt.zero_grad();
      torch::mse_loss(reference->forward(data.x), data.y).backward();
      opt.step();
    }
  }

  auto stores = MakeStores(kWorld);
  std::vector<torch::nn::Sequential> models = {MakeModel(), MakeModel()};
  std::vector<std::vector<std::vector<torch::Tensor>>> grads(kWorld);  // [rank][step][param]
  std::vector<int> overlapped(kWorld, 0);
  std::vector<std::thread> threads;
  for (int r = 0; r < kWorld; ++r) {
    threads.emplace_back([&, r] {
      auto comm = *StoreCommunicator::Create(stores[r], r, kWorld);
      // ~1 KiB buckets: several collectives per step, most launched from inside backward.
      auto bucketer = *GradBucketer::Create(models[r]->parameters(), comm.get(), 1.0 / 1024);
      torch::optim::AdamW opt(models[r]->parameters(), torch::optim::AdamWOptions(1e-2));
      torch::Tensor x = data.x.narrow(0, 4 * r, 4);
      torch::Tensor y = data.y.narrow(0, 4 * r, 4);
      for (int step = 0; step < kSteps; ++step) {
        opt.zero_grad();
        torch::mse_loss(models[r]->forward(x), y).backward();
        ASSERT_TRUE(bucketer->Finish().ok());
        overlapped[r] += bucketer->last_overlapped_buckets();
        std::vector<torch::Tensor> g;
        for (const auto& p : models[r]->parameters()) g.push_back(p.grad().clone());
        grads[r].push_back(std::move(g));
        opt.step();
      }
    });
  }
  for (auto& t : threads) t.join();

  for (int step = 0; step < kSteps; ++step) {
    for (size_t i = 0; i < grads[0][step].size(); ++i) {
      EXPECT_TRUE(torch::equal(grads[0][step][i], grads[1][step][i])) << step << " " << i;
    }
  }
  for (int r = 0; r < kWorld; ++r) EXPECT_GT(overlapped[r], 0) << "no bucket overlapped backward";
  const auto ref_params = reference->parameters();
  for (int r = 0; r < kWorld; ++r) {
    const auto params = models[r]->parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      EXPECT_TRUE(torch::allclose(params[i], ref_params[i], /*rtol=*/1e-5, /*atol=*/1e-6))
          << "rank " << r << " param " << i << " max diff "
          << (params[i] - ref_params[i]).abs().max().item<float>();
    }
  }
}

TEST(GradBucketerTest, NoCommunicationOnNonFinalMicroSteps) {
  auto stores = MakeStores(1);
  auto inner = *StoreCommunicator::Create(stores[0], 0, 1);
  CountingCommunicator comm(inner.get());
  torch::nn::Sequential model = MakeModel();
  auto bucketer = *GradBucketer::Create(model->parameters(), &comm, 1.0 / 1024);
  const int num_buckets = static_cast<int>(bucketer->BucketLayout().size());
  Data data;

  bucketer->set_sync(false);
  torch::mse_loss(model->forward(data.x.narrow(0, 0, 4)), data.y.narrow(0, 0, 4)).backward();
  EXPECT_EQ(comm.all_reduces.load(), 0);
  EXPECT_FALSE(bucketer->Finish().ok()) << "Finish with sync off must be refused";

  bucketer->set_sync(true);
  torch::mse_loss(model->forward(data.x.narrow(0, 4, 4)), data.y.narrow(0, 4, 4)).backward();
  std::vector<torch::Tensor> accumulated;
  for (const auto& p : model->parameters()) accumulated.push_back(p.grad().clone());
  ASSERT_TRUE(bucketer->Finish().ok());
  EXPECT_EQ(comm.all_reduces.load(), num_buckets);
  // World size 1: the averaged gradient is the accumulated one.
  const auto params = model->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(torch::equal(params[i].grad(), accumulated[i])) << i;
  }
}

TEST(GradBucketerTest, UnusedParametersStillTakePartWithZeros) {
  auto stores = MakeStores(1);
  auto comm = *StoreCommunicator::Create(stores[0], 0, 1);
  torch::nn::Linear used(4, 4);
  torch::nn::Linear unused(4, 4);
  std::vector<torch::Tensor> params = used->parameters();
  for (const auto& p : unused->parameters()) params.push_back(p);
  auto bucketer = *GradBucketer::Create(params, comm.get(), 25);
  used->forward(torch::ones({2, 4})).sum().backward();
  ASSERT_TRUE(bucketer->Finish().ok());
  EXPECT_TRUE(torch::equal(unused->weight.grad(), torch::zeros({4, 4})));
  EXPECT_EQ(bucketer->last_overlapped_buckets(), 0);  // one bucket, completed only in Finish
}

}  // namespace
}  // namespace gauntlet
