#include "sluice/core/lookup_pool.hpp"

namespace sluice {

lookup_pool::lookup_pool(int threads, std::size_t max_backlog) : max_backlog_(max_backlog) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

lookup_pool::~lookup_pool() { stop(); }

bool lookup_pool::submit(std::function<void()> task) {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ || tasks_.size() >= max_backlog_) return false;
        tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
    return true;
}

void lookup_pool::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    threads_.clear();
}

void lookup_pool::run() {
    while (true) {
        std::function<void()> task;
        {
            std::unique_lock lock(mutex_);
            cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
            if (tasks_.empty()) return;  // stopping and nothing left
            task = std::move(tasks_.front());
            tasks_.pop_front();
        }
        task();
    }
}

}  // namespace sluice
