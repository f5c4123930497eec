// The per-client token bucket behind http.rate_limit: bursts, refill, Retry-After, bounded memory.

#include <gtest/gtest.h>

#include <string>

#include "../../../src/serve/http/rate_limit.hpp"

namespace sluice::serve {
namespace {

using namespace std::chrono_literals;
using clock_type = rate_limiter::clock;

TEST(RateLimiter, AllowsTheBurstThenAsksToWait) {
    rate_limiter limiter(1.0, 3.0, 100);
    const auto t0 = clock_type::now();
    for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.acquire("alice", t0), 0u) << "request " << i;
    EXPECT_EQ(limiter.acquire("alice", t0), 1u);  // one token per second: one second to wait
}

TEST(RateLimiter, RefillsAtTheConfiguredRate) {
    rate_limiter limiter(2.0, 1.0, 100);
    const auto t0 = clock_type::now();
    EXPECT_EQ(limiter.acquire("a", t0), 0u);
    EXPECT_NE(limiter.acquire("a", t0 + 100ms), 0u);  // 0.2 tokens back
    EXPECT_EQ(limiter.acquire("a", t0 + 600ms), 0u);  // 1.2 tokens back (less the refused one: none taken)
    EXPECT_NE(limiter.acquire("a", t0 + 700ms), 0u);
}

TEST(RateLimiter, RetryAfterIsWholeSecondsAndAtLeastOne) {
    rate_limiter slow(0.1, 1.0, 100);  // a token every 10 s
    const auto t0 = clock_type::now();
    EXPECT_EQ(slow.acquire("c", t0), 0u);
    EXPECT_EQ(slow.acquire("c", t0), 10u);
    EXPECT_EQ(slow.acquire("c", t0 + 2500ms), 8u);  // 7.5 s left, rounded up

    rate_limiter fast(1000.0, 1.0, 100);
    EXPECT_EQ(fast.acquire("d", t0), 0u);
    EXPECT_EQ(fast.acquire("d", t0), 1u);  // 1 ms left, but Retry-After has whole seconds
}

TEST(RateLimiter, ClientsHaveSeparateBuckets) {
    rate_limiter limiter(1.0, 1.0, 100);
    const auto t0 = clock_type::now();
    EXPECT_EQ(limiter.acquire("a", t0), 0u);
    EXPECT_NE(limiter.acquire("a", t0), 0u);
    EXPECT_EQ(limiter.acquire("b", t0), 0u);
}

TEST(RateLimiter, MemoryStaysBoundedUnderManyClients) {
    rate_limiter limiter(1.0, 5.0, 64);
    const auto t0 = clock_type::now();
    for (int i = 0; i < 10000; ++i) limiter.acquire("client-" + std::to_string(i), t0);
    EXPECT_LE(limiter.clients(), 64u);
}

TEST(RateLimiter, IdleClientsAreForgotten) {
    rate_limiter limiter(10.0, 2.0, 1000);  // a bucket is full again after 0.2 s
    const auto t0 = clock_type::now();
    for (int i = 0; i < 100; ++i) limiter.acquire("idle-" + std::to_string(i), t0);
    EXPECT_EQ(limiter.clients(), 100u);
    // Later traffic from other clients sweeps the idle buckets away as it goes.
    for (int i = 0; i < 400; ++i) limiter.acquire("busy-" + std::to_string(i % 50), t0 + 1s);
    EXPECT_EQ(limiter.clients(), 50u);
}

TEST(RateLimiter, AClientHeavyEnoughToBeLimitedKeepsItsBucketWhileOthersComeAndGo) {
    rate_limiter limiter(1.0, 1.0, 64);
    const auto t0 = clock_type::now();
    EXPECT_EQ(limiter.acquire("heavy", t0), 0u);
    for (int i = 0; i < 5; ++i) {
        limiter.acquire("passer-" + std::to_string(i), t0);
        EXPECT_NE(limiter.acquire("heavy", t0), 0u);
    }
}

}  // namespace
}  // namespace sluice::serve
