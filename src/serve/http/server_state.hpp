#pragma once
// What every connection of one HTTP server shares: the dispatcher, the limits, a weak handle
// on the io_context (for answers that arrive from other threads) and the registry of live
// sessions (so stop() can close them). Created by the server at start(); kept alive by the
// sessions and the listener as long as any of them exists.

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "dispatch.hpp"

namespace sluice::serve {

namespace net = boost::asio;

class session;

struct server_limits {
    std::uint64_t body_limit_bytes = 1048576;
    std::uint32_t header_limit_bytes = 8192;
    std::chrono::milliseconds read_timeout{10000};   // whole request, from its first byte
    std::chrono::milliseconds idle_timeout{60000};   // keep-alive wait for the next request
    std::chrono::milliseconds write_timeout{10000};  // one response
    std::chrono::milliseconds linger_timeout{2000};  // draining the client after an error
};

class server_state {
public:
    using registry_entry = std::list<std::weak_ptr<session>>::iterator;

    server_state(dispatcher d, server_limits l) : dispatch(std::move(d)), limits(l), log(http_logger()) {}

    const dispatcher dispatch;
    const server_limits limits;
    const std::shared_ptr<spdlog::logger> log;  // looked up once: spdlog::get takes a global lock
    std::weak_ptr<net::io_context> ioc;

    registry_entry add(std::weak_ptr<session> s) {
        std::lock_guard lock(mutex_);
        return sessions_.insert(sessions_.end(), std::move(s));
    }
    void remove(registry_entry it) {
        std::lock_guard lock(mutex_);
        sessions_.erase(it);
    }
    /// The sessions still alive. The caller drops the pointers outside the registry lock.
    std::vector<std::shared_ptr<session>> live() {
        std::vector<std::shared_ptr<session>> out;
        std::lock_guard lock(mutex_);
        for (auto& w : sessions_)
            if (auto s = w.lock()) out.push_back(std::move(s));
        return out;
    }

private:
    std::mutex mutex_;
    std::list<std::weak_ptr<session>> sessions_;
};

}  // namespace sluice::serve
