#include "trainer/dist/store_communicator.h"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

namespace gauntlet {
namespace {

using std::chrono::milliseconds;

// One real TCPStore server on an ephemeral loopback port and one client per rank, as separate
// processes would have.
std::vector<c10::intrusive_ptr<c10d::Store>> MakeStores(int world_size, milliseconds timeout) {
  c10d::TCPStoreOptions server_options;
  server_options.port = 0;
  server_options.isServer = true;
  server_options.waitWorkers = false;
  server_options.timeout = timeout;
  std::vector<c10::intrusive_ptr<c10d::Store>> stores;
  auto server = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", server_options);
  const uint16_t port = server->getPort();
  stores.push_back(server);
  for (int r = 1; r < world_size; ++r) {
    c10d::TCPStoreOptions options;
    options.port = port;
    options.timeout = timeout;
    stores.push_back(c10::make_intrusive<c10d::TCPStore>("127.0.0.1", options));
  }
  return stores;
}

std::vector<std::unique_ptr<StoreCommunicator>> MakeComms(int world_size,
                                                          milliseconds timeout = milliseconds(
                                                              20000)) {
  std::vector<std::unique_ptr<StoreCommunicator>> comms;
  std::vector<c10::intrusive_ptr<c10d::Store>> stores = MakeStores(world_size, timeout);
  for (int r = 0; r < world_size; ++r) {
    auto comm = StoreCommunicator::Create(stores[r], r, world_size);
    EXPECT_TRUE(comm.ok()) << comm.status();
    comms.push_back(*std::move(comm));
  }
  return comms;
}

// Runs fn(rank) on one thread per rank.
template <typename Fn>
void OnEveryRank(int world_size, Fn fn) {
  std::vector<std::thread> threads;
  for (int r = 0; r < world_size; ++r) threads.emplace_back([&fn, r] { fn(r); });
  for (std::thread& t : threads) t.join();
}

torch::Tensor RankData(int rank, int64_t n) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1000 + rank);
  return torch::randn({n}, gen, torch::kFloat32);
}

TEST(StoreCommunicatorTest, AllReduceSumsInRankOrderWithIdenticalBits) {
  constexpr int kWorld = 3;
  auto comms = MakeComms(kWorld);
  // Several collectives in flight at once, as the bucketer issues them.
  const std::vector<int64_t> sizes = {1, 1000, 70000, 5};
  std::vector<std::vector<torch::Tensor>> results(kWorld);
  OnEveryRank(kWorld, [&](int r) {
    std::vector<std::unique_ptr<Work>> works;
    for (size_t i = 0; i < sizes.size(); ++i) {
      results[r].push_back(RankData(r * 10 + static_cast<int>(i), sizes[i]));
      works.push_back(comms[r]->AllReduceSum(results[r].back()));
    }
    for (auto& w : works) EXPECT_TRUE(w->Wait().ok());
  });
  for (size_t i = 0; i < sizes.size(); ++i) {
    torch::Tensor expected = RankData(0 + static_cast<int>(i), sizes[i]);
    for (int r = 1; r < kWorld; ++r) expected += RankData(r * 10 + static_cast<int>(i), sizes[i]);
    for (int r = 0; r < kWorld; ++r) {
      EXPECT_TRUE(torch::equal(results[r][i], expected)) << "tensor " << i << " rank " << r;
    }
  }
}

TEST(StoreCommunicatorTest, BroadcastAndBarrier) {
  constexpr int kWorld = 2;
  auto comms = MakeComms(kWorld);
  std::vector<torch::Tensor> values(kWorld);
  OnEveryRank(kWorld, [&](int r) {
    values[r] = torch::full({4, 3}, static_cast<float>(r + 1));
    EXPECT_TRUE(comms[r]->Broadcast(values[r], /*root=*/1).ok());
    EXPECT_TRUE(comms[r]->Barrier().ok());
  });
  EXPECT_TRUE(torch::equal(values[0], torch::full({4, 3}, 2.0f)));
  EXPECT_TRUE(torch::equal(values[1], torch::full({4, 3}, 2.0f)));
}

TEST(StoreCommunicatorTest, KeysAreDeletedAfterEveryRankRead) {
  constexpr int kWorld = 2;
  std::vector<c10::intrusive_ptr<c10d::Store>> stores = MakeStores(kWorld, milliseconds(20000));
  std::vector<std::unique_ptr<StoreCommunicator>> comms;
  for (int r = 0; r < kWorld; ++r) {
    comms.push_back(*StoreCommunicator::Create(stores[r], r, kWorld, "t"));
  }
  OnEveryRank(kWorld, [&](int r) {
    for (int i = 0; i < 5; ++i) {
      EXPECT_TRUE(comms[r]->AllReduceSum(torch::ones({8}))->Wait().ok());
    }
    EXPECT_TRUE(comms[r]->Barrier().ok());
  });
  // The barrier is the last collective: its release may still be in flight on the other rank,
  // but every all-reduce's keys must be gone.
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(stores[0]->check({"t/" + std::to_string(i) + "/0"})) << i;
    EXPECT_FALSE(stores[0]->check({"t/" + std::to_string(i) + "/read"})) << i;
  }
}

TEST(StoreCommunicatorTest, MissingPeerIsUnavailableNotAHang) {
  auto comms = MakeComms(2, milliseconds(300));
  absl::Status status = comms[0]->AllReduceSum(torch::ones({4}))->Wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
}

TEST(StoreCommunicatorTest, FinishHoldsRankZeroUntilEveryRankIsThrough) {
  auto comms = MakeComms(3);
  std::atomic<int> finished{0};
  std::thread late_ranks([&] {
    // Ranks 1 and 2 are still busy (e.g. deleting the last collective's keys) for a moment.
    std::this_thread::sleep_for(milliseconds(200));
    for (int r = 1; r < 3; ++r) {
      ++finished;
      EXPECT_TRUE(comms[r]->Finish().ok());
    }
  });
  EXPECT_TRUE(comms[0]->Finish().ok());
  EXPECT_EQ(finished.load(), 2) << "rank 0 returned before every rank finished";
  late_ranks.join();
}

TEST(StoreCommunicatorTest, RejectsBadArguments) {
  auto comms = MakeComms(1);
  EXPECT_EQ(comms[0]->AllReduceSum(torch::ones({4, 4}).t())->Wait().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(comms[0]->Broadcast(torch::ones({2}), 3).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(StoreCommunicator::Create(nullptr, 0, 1).ok());
}

}  // namespace
}  // namespace gauntlet
