#pragma once
// The threads that run blocking store reads (Redis, PostgreSQL) for the HTTP io threads.

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sluice {

/// http.lookup_threads threads and a bounded backlog. submit() never blocks: when the backlog
/// is full it returns false and the caller answers 503, so a slow store slows only its requests.
/// Owned by the daemon; stopped after the HTTP server.
class lookup_pool {
public:
    lookup_pool(int threads, std::size_t max_backlog);
    ~lookup_pool();
    bool submit(std::function<void()> task);
    void stop();

private:
    void run();
    std::size_t max_backlog_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> tasks_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace sluice
