// The order of batches in flight on several connections: a batch's turn (to upsert latest and
// store its offsets) comes only after every batch before it passed or finished, a batch that
// failed after passing holds the later ones again, and batches finish in the order they were made.

#include "../../../src/store/writer/flight_order.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

namespace sluice::writer {
namespace {

using namespace std::chrono_literals;

// True when the future is still waiting after a short while.
template <class T>
bool still_waiting(std::future<T>& f) {
    return f.wait_for(100ms) == std::future_status::timeout;
}

TEST(FlightOrder, ABatchsTurnComesWhenEveryEarlierBatchPassed) {
    flight_order order(nullptr);
    const auto first = order.next(), second = order.next(), third = order.next();
    EXPECT_TRUE(order.turn(first));
    auto third_turn = std::async(std::launch::async, [&] { return order.turn(third); });
    auto second_turn = std::async(std::launch::async, [&] { return order.turn(second); });
    EXPECT_TRUE(still_waiting(second_turn));
    order.passed(first);
    EXPECT_TRUE(second_turn.get());
    EXPECT_TRUE(still_waiting(third_turn)) << "the third went before the second passed";
    order.passed(second);
    EXPECT_TRUE(third_turn.get());
}

TEST(FlightOrder, ABatchThatFailedAfterPassingHoldsTheLaterOnesAgain) {
    flight_order order(nullptr);
    const auto first = order.next(), second = order.next();
    order.passed(first);
    EXPECT_TRUE(order.turn(second));
    order.retry(first);  // its commit failed: it writes again
    auto again = std::async(std::launch::async, [&] { return order.turn(second); });
    EXPECT_TRUE(still_waiting(again));
    order.finished(first);
    EXPECT_TRUE(again.get());
}

TEST(FlightOrder, BatchesFinishInTheOrderTheyWereMade) {
    flight_order order(nullptr);
    const auto first = order.next(), second = order.next(), third = order.next();
    auto third_waits = std::async(std::launch::async, [&] { return order.before_finished(third); });
    order.finished(second);  // out of order: the third still waits for the first
    EXPECT_TRUE(still_waiting(third_waits));
    EXPECT_TRUE(order.before_finished(first));
    order.finished(first);
    EXPECT_TRUE(third_waits.get());
}

TEST(FlightOrder, AbortEndsEveryWait) {
    std::atomic<bool> abort{false};
    flight_order order([&] { return abort.load(); });
    const auto first = order.next(), second = order.next();
    (void)first;
    auto turn = std::async(std::launch::async, [&] { return order.turn(second); });
    auto finish = std::async(std::launch::async, [&] { return order.before_finished(second); });
    EXPECT_TRUE(still_waiting(turn));
    abort = true;
    EXPECT_FALSE(turn.get());
    EXPECT_FALSE(finish.get());
}

}  // namespace
}  // namespace sluice::writer
