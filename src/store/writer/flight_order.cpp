#include "flight_order.hpp"

#include <chrono>

namespace sluice::writer {

template <class Pred>
bool flight_order::wait(Pred done) {
    std::unique_lock lock(mutex_);
    while (!done()) {
        if (abort_ && abort_()) return false;
        changed_.wait_for(lock, std::chrono::milliseconds(20));
    }
    return true;
}

bool flight_order::turn(std::uint64_t n) {
    return wait([&] {
        for (std::uint64_t m = finished_below_; m < n; ++m)
            if (!passed_.contains(m) && !finished_.contains(m)) return false;
        return true;
    });
}

void flight_order::passed(std::uint64_t n) {
    {
        std::lock_guard lock(mutex_);
        passed_.insert(n);
    }
    changed_.notify_all();
}

void flight_order::retry(std::uint64_t n) {
    std::lock_guard lock(mutex_);
    passed_.erase(n);
}

bool flight_order::before_finished(std::uint64_t n) {
    return wait([&] { return finished_below_ >= n; });
}

void flight_order::finished(std::uint64_t n) {
    {
        std::lock_guard lock(mutex_);
        passed_.erase(n);
        finished_.insert(n);
        while (finished_.contains(finished_below_)) finished_.erase(finished_below_++);
    }
    changed_.notify_all();
}

void flight_queue::push(flight f) {
    {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return in_flight_ < capacity_; });
        ++in_flight_;
        queue_.push_back(std::move(f));
    }
    changed_.notify_all();
}

std::optional<flight> flight_queue::pop() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !queue_.empty() || closed_; });
    if (queue_.empty()) return std::nullopt;
    flight f = std::move(queue_.front());
    queue_.pop_front();
    return f;
}

void flight_queue::done() {
    {
        std::lock_guard lock(mutex_);
        --in_flight_;
    }
    changed_.notify_all();
}

void flight_queue::close() {
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
    }
    changed_.notify_all();
}

}  // namespace sluice::writer
