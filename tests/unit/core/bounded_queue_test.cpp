// The queue between stages and the consumer's wakeup: exact bounds, per-producer order, no loss.

#include "sluice/core/bounded_queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "sluice/core/record.hpp"

namespace sluice {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

TEST(CoreBoundedQueue, HoldsExactlyItsCapacity) {
    bounded_queue<int> q(3);
    EXPECT_EQ(q.capacity(), 3u);
    for (int i = 0; i < 3; ++i) {
        int v = i;
        ASSERT_TRUE(q.try_push(v)) << i;
    }
    int extra = 99;
    EXPECT_FALSE(q.try_push(extra));
    EXPECT_EQ(extra, 99);
    EXPECT_EQ(q.size(), 3u);

    // One pop frees exactly one slot.
    int out = -1;
    ASSERT_TRUE(q.try_pop(out));
    EXPECT_EQ(out, 0);
    ASSERT_TRUE(q.try_push(extra));
    int again = 100;
    EXPECT_FALSE(q.try_push(again));
    EXPECT_EQ(q.size(), 3u);
}

TEST(CoreBoundedQueue, CapacityIsExactBeyondTheLibrarysBlockSize) {
    // The lock-free library allocates in blocks; the bound must still be the configured one.
    bounded_queue<int> q(1000);
    int pushed = 0;
    for (int i = 0; i < 5000; ++i) {
        int v = i;
        if (q.try_push(v)) ++pushed;
    }
    EXPECT_EQ(pushed, 1000);
    EXPECT_EQ(q.size(), 1000u);
}

TEST(CoreBoundedQueue, FailedPushLeavesTheItemUntouched) {
    bounded_queue<raw_message> q(1);
    raw_message first;
    first.payload = "first";
    ASSERT_TRUE(q.try_push(first));

    raw_message second;
    second.payload = std::string(1000, 'x');  // longer than any small-string buffer
    second.source.topic = "user-events";
    second.source.partition = 3;
    second.source.offset = 77;
    EXPECT_FALSE(q.try_push(second));
    EXPECT_EQ(second.payload, std::string(1000, 'x'));
    EXPECT_EQ(second.source.topic, "user-events");
    EXPECT_EQ(second.source.partition, 3);
    EXPECT_EQ(second.source.offset, 77);

    raw_message out;
    ASSERT_TRUE(q.try_pop(out));
    EXPECT_EQ(out.payload, "first");
    ASSERT_TRUE(q.try_push(second));
    ASSERT_TRUE(q.try_pop(out));
    EXPECT_EQ(out.payload, std::string(1000, 'x'));
    EXPECT_EQ(out.source.offset, 77);
}

TEST(CoreBoundedQueue, ZeroCapacityRefusesEverything) {
    bounded_queue<int> q(0);
    int v = 5;
    EXPECT_FALSE(q.try_push(v));
    EXPECT_EQ(v, 5);
    EXPECT_EQ(q.size(), 0u);
}

TEST(CoreBoundedQueue, PopFromEmptyFailsAndLeavesOutAlone) {
    bounded_queue<int> q(4);
    int out = 42;
    EXPECT_FALSE(q.try_pop(out));
    EXPECT_EQ(out, 42);
    EXPECT_EQ(q.size(), 0u);
}

TEST(CoreBoundedQueue, SizeCountsPushesAndPops) {
    bounded_queue<int> q(10);
    EXPECT_EQ(q.size(), 0u);
    for (int i = 1; i <= 7; ++i) {
        int v = i;
        ASSERT_TRUE(q.try_push(v));
        EXPECT_EQ(q.size(), static_cast<std::size_t>(i));
    }
    for (int i = 1; i <= 7; ++i) {
        int out = 0;
        ASSERT_TRUE(q.try_pop(out));
        EXPECT_EQ(out, i);  // one producer: FIFO
        EXPECT_EQ(q.size(), static_cast<std::size_t>(7 - i));
    }
    int out = 0;
    EXPECT_FALSE(q.try_pop(out));
    EXPECT_EQ(q.size(), 0u);
}

TEST(CoreBoundedQueue, CarriesProcessedItems) {
    bounded_queue<processed> q(2);
    record r;
    r.key = "user-1";
    r.values = {value{std::int64_t{3}}, value{std::string("DE")}};
    processed a = r;
    dead_letter d;
    d.error = "malformed JSON";
    processed b = d;
    ASSERT_TRUE(q.try_push(a));
    ASSERT_TRUE(q.try_push(b));
    processed c = record{};
    EXPECT_FALSE(q.try_push(c));

    processed out;
    ASSERT_TRUE(q.try_pop(out));
    ASSERT_TRUE(std::holds_alternative<record>(out));
    EXPECT_EQ(std::get<record>(out).key, "user-1");
    EXPECT_EQ(std::get<record>(out).values.size(), 2u);
    ASSERT_TRUE(q.try_pop(out));
    ASSERT_TRUE(std::holds_alternative<dead_letter>(out));
    EXPECT_EQ(std::get<dead_letter>(out).error, "malformed JSON");
}

// Several producers push (producer id, sequence number) through a small queue so they hit "full"
// often; one consumer checks that each producer's numbers arrive in order, none lost, none doubled.
TEST(CoreBoundedQueue, KeepsEachProducersOrderWithoutLossOrDuplicates) {
    constexpr int producers = 4;
    constexpr int per_producer = 50000;
    constexpr int shift = 20;  // item = producer << shift | sequence
    static_assert(per_producer < (1 << shift));
    bounded_queue<int> q(64);
    const auto deadline = steady::now() + 30s;
    std::atomic<bool> timed_out{false};

    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
            for (int seq = 0; seq < per_producer; ++seq) {
                int item = (p << shift) | seq;
                while (!q.try_push(item)) {
                    if (steady::now() > deadline) {
                        timed_out = true;
                        return;
                    }
                    std::this_thread::yield();
                }
            }
        });
    }

    std::vector<int> next(producers, 0);
    int received = 0;
    int out_of_order = 0;
    int unknown = 0;
    while (received < producers * per_producer && steady::now() < deadline && !timed_out) {
        int item = -1;
        if (!q.try_pop(item)) {
            std::this_thread::yield();
            continue;
        }
        ++received;
        const int p = item >> shift;
        const int seq = item & ((1 << shift) - 1);
        if (p < 0 || p >= producers) {
            ++unknown;
            continue;
        }
        if (seq != next[p]) ++out_of_order;
        next[p] = seq + 1;
    }
    for (auto& t : threads) t.join();

    EXPECT_FALSE(timed_out.load());
    EXPECT_EQ(received, producers * per_producer);
    EXPECT_EQ(unknown, 0);
    EXPECT_EQ(out_of_order, 0);
    for (int p = 0; p < producers; ++p) EXPECT_EQ(next[p], per_producer) << "producer " << p;
    int extra = 0;
    EXPECT_FALSE(q.try_pop(extra));
    EXPECT_EQ(q.size(), 0u);
}

TEST(CoreBoundedQueue, ConcurrentProducersNeverExceedTheCapacity) {
    constexpr int producers = 4;
    bounded_queue<int> q(100);
    std::atomic<int> accepted{0};
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
        threads.emplace_back([&] {
            for (int i = 0; i < 1000; ++i) {
                int v = i;
                if (q.try_push(v)) ++accepted;
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(accepted.load(), 100);
    EXPECT_EQ(q.size(), 100u);
    int popped = 0;
    int out = 0;
    while (q.try_pop(out)) ++popped;
    EXPECT_EQ(popped, 100);
}

TEST(CoreWakeup, WaitReturnsPromptlyOnNotifyFromAnotherThread) {
    wakeup w;
    const auto seen = w.epoch();
    std::promise<void> sleeping;
    auto notifier = std::async(std::launch::async, [&] {
        sleeping.get_future().wait_for(5s);
        std::this_thread::sleep_for(50ms);  // let the waiter reach the condition variable
        w.notify();
    });
    const auto start = steady::now();
    sleeping.set_value();
    w.wait_for_change(seen, 10s);
    const auto waited = steady::now() - start;
    notifier.wait_for(10s);
    EXPECT_LT(waited, 5s);
    EXPECT_NE(w.epoch(), seen);
}

TEST(CoreWakeup, WaitReturnsAfterTheTimeoutWithoutNotify) {
    wakeup w;
    const auto start = steady::now();
    w.wait_for_change(w.epoch(), 100ms);
    const auto waited = steady::now() - start;
    EXPECT_GE(waited, 95ms);
    EXPECT_LT(waited, 5s);

    const auto start2 = steady::now();
    w.wait_for(100ms);
    const auto waited2 = steady::now() - start2;
    EXPECT_GE(waited2, 95ms);
    EXPECT_LT(waited2, 5s);
}

TEST(CoreWakeup, NotifyBetweenEpochAndWaitIsNotLost) {
    wakeup w;
    const auto seen = w.epoch();
    w.notify();  // arrives after the consumer found its inputs empty, before it sleeps
    const auto start = steady::now();
    w.wait_for_change(seen, 10s);
    EXPECT_LT(steady::now() - start, 1s);
}

TEST(CoreWakeup, NotifyWithNobodyWaitingOnlyAdvancesTheEpoch) {
    wakeup w;
    const auto e0 = w.epoch();
    w.notify();
    w.notify();
    EXPECT_EQ(w.epoch(), e0 + 2);
}

// A producer/consumer handshake many times over: every notify must wake the consumer, so the
// whole run takes far less than one timeout per round.
TEST(CoreWakeup, ManyHandshakesNeverLoseAWakeup) {
    constexpr int rounds = 2000;
    wakeup consumer;
    bounded_queue<int> q(1);
    std::atomic<bool> stop{false};
    std::thread producer([&] {
        for (int i = 0; i < rounds && !stop; ++i) {
            int v = i;
            while (!q.try_push(v) && !stop) std::this_thread::yield();
            consumer.notify();
        }
    });
    const auto start = steady::now();
    int received = 0;
    int slow_waits = 0;
    while (received < rounds && steady::now() - start < 20s) {
        const auto seen = consumer.epoch();
        int out = 0;
        if (q.try_pop(out)) {
            EXPECT_EQ(out, received);
            ++received;
            continue;
        }
        const auto before = steady::now();
        consumer.wait_for_change(seen, 2s);
        if (steady::now() - before >= 2s) ++slow_waits;
    }
    stop = true;
    producer.join();
    EXPECT_EQ(received, rounds);
    EXPECT_EQ(slow_waits, 0);
}

}  // namespace
}  // namespace sluice
