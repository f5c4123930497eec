#include "sluice/core/bounded_queue.hpp"

#include <concurrentqueue/concurrentqueue.h>

#include "sluice/core/record.hpp"

namespace sluice {

void wakeup::notify() {
    epoch_.fetch_add(1, std::memory_order_acq_rel);
    if (sleepers_.load(std::memory_order_acquire) > 0) {
        std::lock_guard lock(mutex_);
        cv_.notify_all();
    }
}

void wakeup::wait_for(std::chrono::milliseconds timeout) { wait_for_change(epoch(), timeout); }

void wakeup::wait_for_change(std::uint64_t seen_epoch, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    sleepers_.fetch_add(1, std::memory_order_acq_rel);
    cv_.wait_for(lock, timeout, [&] { return epoch_.load(std::memory_order_acquire) != seen_epoch; });
    sleepers_.fetch_sub(1, std::memory_order_acq_rel);
}

template <class T>
struct bounded_queue<T>::impl {
    explicit impl(std::size_t capacity) : queue(capacity) {}
    moodycamel::ConcurrentQueue<T> queue;
};

template <class T>
bounded_queue<T>::bounded_queue(std::size_t capacity)
    : impl_(std::make_unique<impl>(capacity)), capacity_(capacity) {}

template <class T>
bounded_queue<T>::~bounded_queue() = default;

template <class T>
bool bounded_queue<T>::try_push(T& item) {
    // Reserve a slot first so the bound is exact across producers.
    std::size_t n = size_.load(std::memory_order_relaxed);
    do {
        if (n >= capacity_) return false;
    } while (!size_.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel));
    if (!impl_->queue.enqueue(std::move(item))) {
        size_.fetch_sub(1, std::memory_order_acq_rel);
        return false;
    }
    return true;
}

template <class T>
bool bounded_queue<T>::try_pop(T& out) {
    if (!impl_->queue.try_dequeue(out)) return false;
    size_.fetch_sub(1, std::memory_order_acq_rel);
    return true;
}

template class bounded_queue<raw_message>;
template class bounded_queue<processed>;
template class bounded_queue<int>;  // for unit tests

}  // namespace sluice
