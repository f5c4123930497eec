#include "integration/support/redis.hpp"

#include <hiredis/hiredis.h>

#include <csignal>
#include <stdexcept>
#include <thread>

#include "integration/support/net.hpp"

namespace sluice::it {

namespace {

redis_reply convert(const redisReply* r) {
    redis_reply out;
    if (r == nullptr) return out;
    switch (r->type) {
        case REDIS_REPLY_STRING:
            out.type = redis_reply::kind::string;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_STATUS:
            out.type = redis_reply::kind::status;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_ERROR:
            out.type = redis_reply::kind::error;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_INTEGER:
            out.type = redis_reply::kind::integer;
            out.integer = r->integer;
            break;
        case REDIS_REPLY_ARRAY:
            out.type = redis_reply::kind::array;
            for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
            break;
        default:
            break;
    }
    return out;
}

}  // namespace

redis_server::redis_server() : dir_("sluice-redis-"), port_(free_port()) { start(); }

redis_server::~redis_server() {
    try {
        stop();
    } catch (...) {
    }
}

void redis_server::start(std::chrono::seconds timeout) {
    if (running()) return;
    proc_.emplace(spawn_options{{"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1", "--dir",
                                 dir_.path().string(), "--save", "", "--appendonly", "no", "--daemonize", "no",
                                 "--protected-mode", "no"},
                                dir_ / "redis.log", {}, dir_.path(), SIGKILL, {}});
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        try {
            redis_client c(port_);
            if (c.ping()) return;
        } catch (const std::exception&) {
        }
        if (!running()) {
            throw std::runtime_error("redis-server exited (" + proc_->status()->describe() + "):\n" + log_tail());
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            throw std::runtime_error("redis-server did not answer PING in time:\n" + log_tail());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

void redis_server::stop(std::chrono::seconds grace) {
    if (!proc_) return;
    proc_->stop(SIGTERM, grace);
    proc_.reset();
}

bool redis_server::running() { return proc_ && proc_->running(); }

std::string redis_server::log_tail(std::size_t max_bytes) const { return file_tail(dir_ / "redis.log", max_bytes); }

redis_client::redis_client(int port, const std::string& host) {
    timeval tv{2, 0};
    ctx_ = redisConnectWithTimeout(host.c_str(), port, tv);
    if (ctx_ == nullptr || ctx_->err != 0) {
        std::string err = ctx_ != nullptr ? ctx_->errstr : "out of memory";
        if (ctx_ != nullptr) redisFree(ctx_);
        ctx_ = nullptr;
        throw std::runtime_error("connect to Redis " + host + ":" + std::to_string(port) + ": " + err);
    }
    redisSetTimeout(ctx_, tv);
}

redis_client::~redis_client() {
    if (ctx_ != nullptr) redisFree(ctx_);
}

redis_reply redis_client::command(const std::vector<std::string>& argv) {
    std::vector<const char*> args;
    std::vector<std::size_t> lens;
    for (const auto& a : argv) {
        args.push_back(a.data());
        lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data()));
    if (r == nullptr) throw std::runtime_error(std::string("redis: ") + ctx_->errstr);
    redis_reply out = convert(r);
    freeReplyObject(r);
    return out;
}

bool redis_client::ping() {
    auto r = command({"PING"});
    return r.type == redis_reply::kind::status && r.str == "PONG";
}

std::map<std::string, std::string> redis_client::hgetall(const std::string& key) {
    auto r = command({"HGETALL", key});
    if (r.type == redis_reply::kind::error) throw std::runtime_error("HGETALL " + key + ": " + r.str);
    std::map<std::string, std::string> out;
    for (std::size_t i = 0; i + 1 < r.elements.size(); i += 2) out[r.elements[i].str] = r.elements[i + 1].str;
    return out;
}

long long redis_client::ttl(const std::string& key) {
    auto r = command({"TTL", key});
    if (r.type != redis_reply::kind::integer) throw std::runtime_error("TTL " + key + ": " + r.str);
    return r.integer;
}

}  // namespace sluice::it
