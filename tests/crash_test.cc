// Proves recovery after kill -9: a child process appends from two threads
// (durable group commits) and reports each acknowledged sequence through a
// pipe; the parent kills it with SIGKILL at a random moment, many times over
// the same directory. After each kill the reopened log must verify (no gap,
// an intact hash chain, stream heads and indexes matching the events) and
// hold every event whose append was acknowledged. The seed is printed so a
// failing run repeats.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include "test_support.h"

namespace cs {
namespace {

[[noreturn]] void run_appender(const std::filesystem::path& dir, int ack_fd, std::uint64_t seed) {
  auto opened = EventLog::open(dir);
  if (!opened.ok()) _exit(3);
  std::shared_ptr<EventLog> log = std::move(opened).value();
  auto worker = [&](std::uint64_t thread_seed) {
    std::mt19937_64 rng(thread_seed);
    for (std::uint64_t n = 0;; ++n) {
      std::vector<NewEvent> batch;
      std::size_t size = 1 + rng() % 40;
      for (std::size_t i = 0; i < size; ++i) {
        std::uint64_t customer = rng() % 50;
        NewEvent e = test::make_event(test::token_purchased(customer, 1 + static_cast<std::int64_t>(rng() % 100)), 0);
        e.id = Uuid::from_words(rng(), rng());
        batch.push_back(std::move(e));
      }
      auto r = log->append(batch);
      if (!r.ok()) _exit(4);
      std::uint64_t acked = r->positions.back().seq.value;
      if (write(ack_fd, &acked, sizeof acked) != sizeof acked) _exit(5);
    }
  };
  std::thread a(worker, seed * 2 + 1), b(worker, seed * 2 + 2);
  a.join();
  _exit(6);  // not reached: the workers loop until killed
}

TEST(CrashTest, KillNineAtAnyMomentLeavesAConsistentDurableLog) {
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  test::TempDir dir;
  constexpr int kills = 25;
  std::uint64_t previous_head = 0;

  for (int round = 0; round < kills; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      run_appender(dir.path(), fds[1], seed + static_cast<std::uint64_t>(round));
    }
    close(fds[1]);

    // Let it acknowledge at least one append, then kill it after a random delay.
    std::uint64_t max_acked = 0;
    auto read_acks = [&](int timeout_ms) {
      pollfd p{fds[0], POLLIN, 0};
      while (poll(&p, 1, timeout_ms) > 0) {
        std::uint64_t acked = 0;
        if (read(fds[0], &acked, sizeof acked) != sizeof acked) break;
        max_acked = std::max(max_acked, acked);
        timeout_ms = 0;
      }
    };
    while (max_acked == 0) {
      read_acks(5000);
      int status = 0;
      ASSERT_EQ(waitpid(pid, &status, WNOHANG), 0) << "appender died early, status " << status;
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(rng() % 60);
    while (std::chrono::steady_clock::now() < deadline) read_acks(1);
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
    read_acks(0);  // acknowledgements written just before the kill
    close(fds[0]);

    auto log = test::open_log(dir.path());
    ASSERT_TRUE(log);
    auto verified = log->verify();
    ASSERT_TRUE(verified.ok()) << "round " << round << ": " << verified.error().to_string();
    EXPECT_GE(log->head().value, max_acked) << "round " << round << ": an acknowledged append was lost";
    EXPECT_GT(log->head().value, previous_head) << "round " << round << ": nothing was appended";
    EXPECT_EQ(verified->events_checked, log->head().value);
    previous_head = log->head().value;
  }
}

}  // namespace
}  // namespace cs
