#include "server/worker_registry.h"

#include "gtest/gtest.h"

namespace gauntlet {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

v1::WorkerInventory Inventory(int gpus, int cpu_slots) {
  v1::WorkerInventory inventory;
  inventory.set_address("host");
  inventory.set_rendezvous_port_base(29500);
  for (int i = 0; i < gpus; ++i) inventory.add_gpus()->set_index(i);
  inventory.set_cpu_slots(cpu_slots);
  return inventory;
}

v1::Placement OnWorker(const std::string& worker, std::vector<int> devices, v1::DeviceKind kind,
                       int port = 29500) {
  v1::Placement placement;
  placement.set_device_kind(kind);
  placement.set_master_port(port);
  v1::PlacementSlice* slice = placement.add_slices();
  slice->set_worker_id(worker);
  for (int d : devices) slice->add_devices(d);
  return placement;
}

TEST(WorkerRegistryTest, BookingsFollowThePlacementsDeviceKind) {
  WorkerRegistry registry(WorkerRegistryOptions{});
  EXPECT_TRUE(registry.Heartbeat("w1", Inventory(2, 2), kT0));
  // A CPU placement books CPU slots even though the worker has GPUs: the kind is the
  // placement's, decided once by the scheduler, never re-derived.
  registry.Book("t-cpu", OnWorker("w1", {0}, v1::DEVICE_KIND_CPU));
  registry.Book("t-gpu", OnWorker("w1", {1}, v1::DEVICE_KIND_GPU, 29501));
  ClusterSnapshot cluster = registry.Snapshot(kT0);
  ASSERT_EQ(cluster.workers.size(), 1u);
  EXPECT_EQ(cluster.workers[0].busy_cpu_slots, std::set<int>{0});
  EXPECT_EQ(cluster.workers[0].busy_gpus, std::set<int>{1});
  EXPECT_EQ(cluster.workers[0].busy_ports, (std::set<int>{29500, 29501}));
  EXPECT_EQ(registry.TrialsOn("w1"), (std::vector<std::string>{"t-cpu", "t-gpu"}));
  EXPECT_TRUE(registry.TakeCapacityChanged());
  registry.Release("t-cpu");
  registry.Release("t-cpu");  // idempotent
  EXPECT_TRUE(registry.TakeCapacityChanged());
  EXPECT_FALSE(registry.TakeCapacityChanged());
  cluster = registry.Snapshot(kT0);
  EXPECT_TRUE(cluster.workers[0].busy_cpu_slots.empty());
  const WorkerRegistry::Counts counts = registry.GetCounts(kT0);
  EXPECT_EQ(counts.gpu_busy, 1);
  EXPECT_EQ(counts.cpu_free, 2);
}

TEST(WorkerRegistryTest, LeaseCountsFromArrivalAndExpiresOnce) {
  WorkerRegistryOptions options;
  options.lease = absl::Seconds(10);
  WorkerRegistry registry(options);
  registry.Heartbeat("w1", Inventory(1, 0), kT0 + absl::Seconds(5));
  // A heartbeat that waited for the lock is stamped when it arrived, and an older stamp never
  // moves the lease backwards.
  registry.Heartbeat("w1", Inventory(1, 0), kT0);
  EXPECT_TRUE(registry.ExpireLeases(kT0 + absl::Seconds(15)).empty());
  EXPECT_EQ(registry.ExpireLeases(kT0 + absl::Seconds(16)), std::vector<std::string>{"w1"});
  EXPECT_TRUE(registry.ExpireLeases(kT0 + absl::Seconds(30)).empty());
  EXPECT_FALSE(registry.Alive("w1"));
  EXPECT_TRUE(registry.Snapshot(kT0 + absl::Seconds(30)).workers.empty());
  EXPECT_TRUE(registry.Heartbeat("w1", Inventory(1, 0), kT0 + absl::Seconds(31)));  // back
}

TEST(WorkerRegistryTest, RepeatedLaunchFailuresMakeAWorkerUnhealthyUntilItRecovers) {
  WorkerRegistryOptions options;
  options.unhealthy_after_failures = 2;
  options.unhealthy_for = absl::Seconds(60);
  WorkerRegistry registry(options);
  registry.Heartbeat("w1", Inventory(1, 0), kT0);
  registry.RecordLaunchFailure("w1", kT0);
  EXPECT_EQ(registry.Snapshot(kT0).workers.size(), 1u);
  registry.RecordLaunchFailure("w1", kT0);
  EXPECT_TRUE(registry.Snapshot(kT0).workers.empty());
  EXPECT_EQ(registry.GetCounts(kT0).unhealthy, 1);
  EXPECT_EQ(registry.Snapshot(kT0 + absl::Seconds(61)).workers.size(), 1u);  // period over
  registry.RecordLaunchSuccess("w1");
  EXPECT_EQ(registry.Snapshot(kT0).workers.size(), 1u);
}

TEST(WorkerRegistryTest, DeregisterLosesTheWorkerAtOnce) {
  WorkerRegistry registry(WorkerRegistryOptions{});
  registry.Heartbeat("w1", Inventory(1, 0), kT0);
  registry.Deregister("w1");
  EXPECT_FALSE(registry.Alive("w1"));
  EXPECT_TRUE(registry.Snapshot(kT0).workers.empty());
}

TEST(WorkerRegistryTest, HasFreeDevicesUntilEveryDeviceIsBookedAndIgnoresLostWorkers) {
  WorkerRegistry registry(WorkerRegistryOptions{});
  EXPECT_FALSE(registry.HasFreeDevices(kT0));  // nobody registered
  registry.Heartbeat("w1", Inventory(1, 1), kT0);
  EXPECT_TRUE(registry.HasFreeDevices(kT0));
  registry.Book("t-gpu", OnWorker("w1", {0}, v1::DEVICE_KIND_GPU));
  EXPECT_TRUE(registry.HasFreeDevices(kT0));  // the CPU slot
  registry.Book("t-cpu", OnWorker("w1", {0}, v1::DEVICE_KIND_CPU, 29501));
  EXPECT_FALSE(registry.HasFreeDevices(kT0));
  registry.Heartbeat("w2", Inventory(1, 0), kT0);
  EXPECT_TRUE(registry.HasFreeDevices(kT0));
  registry.Deregister("w2");
  EXPECT_FALSE(registry.HasFreeDevices(kT0));
  registry.Release("t-gpu");
  EXPECT_TRUE(registry.HasFreeDevices(kT0));
}

TEST(WorkerRegistryTest, CanBookOnlyWhatIsStillFreeOnAWorkerStillThere) {
  WorkerRegistry registry(WorkerRegistryOptions{});
  registry.Heartbeat("w1", Inventory(2, 1), kT0);
  const v1::Placement gpu0 = OnWorker("w1", {0}, v1::DEVICE_KIND_GPU);
  EXPECT_TRUE(registry.CanBook(gpu0, kT0));
  EXPECT_FALSE(registry.CanBook(OnWorker("w1", {5}, v1::DEVICE_KIND_GPU), kT0));  // no GPU 5
  EXPECT_FALSE(registry.CanBook(OnWorker("w9", {0}, v1::DEVICE_KIND_GPU), kT0));  // unknown
  registry.Book("t1", gpu0);
  EXPECT_FALSE(registry.CanBook(OnWorker("w1", {0}, v1::DEVICE_KIND_GPU, 29501), kT0));  // busy
  EXPECT_FALSE(registry.CanBook(OnWorker("w1", {1}, v1::DEVICE_KIND_GPU), kT0));  // port taken
  EXPECT_TRUE(registry.CanBook(OnWorker("w1", {1}, v1::DEVICE_KIND_GPU, 29501), kT0));
  registry.Deregister("w1");
  EXPECT_FALSE(registry.CanBook(OnWorker("w1", {1}, v1::DEVICE_KIND_GPU, 29501), kT0));
}

}  // namespace
}  // namespace gauntlet
