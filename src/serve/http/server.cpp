// The HTTP server: one io_context run by http.threads threads, one listener, a session per
// connection. Created, started and stopped by the app, from one thread.

#include <algorithm>
#include <thread>

#include <spdlog/spdlog.h>

#include "../handlers/handlers.hpp"
#include "listener.hpp"
#include "session.hpp"
#include "sluice/serve/http_server.hpp"

namespace sluice {

namespace {

using namespace sluice::serve;

// Runs the io_context until it is stopped. An exception that escapes a handler (Beast 1.74's
// parser can throw on some hostile chunked input) ends only the connection it came from: the
// handler's session is released during unwinding, and the thread goes back to run().
void run_io_thread(const std::shared_ptr<net::io_context>& ioc) {
    for (;;) {
        try {
            ioc->run();
            return;
        } catch (const std::exception& e) {
            http_logger()->error("http: a connection failed with an exception: {}", e.what());
        } catch (...) {
            http_logger()->error("http: a connection failed with an unknown exception");
        }
    }
}

server_limits limits_from(const http_config& c) {
    server_limits l;
    l.body_limit_bytes = static_cast<std::uint64_t>(std::max<std::int64_t>(0, c.body_limit_bytes));
    l.header_limit_bytes =
        static_cast<std::uint32_t>(std::clamp<std::int64_t>(c.header_limit_bytes, 64, std::int64_t{1} << 30));
    l.read_timeout = std::chrono::milliseconds(std::max<std::int64_t>(1, c.read_timeout_ms));
    l.idle_timeout = std::chrono::milliseconds(std::max<std::int64_t>(1, c.idle_timeout_ms));
    l.write_timeout = std::chrono::milliseconds(std::max<std::int64_t>(1000, c.read_timeout_ms));
    l.linger_timeout = std::min(l.read_timeout, std::chrono::milliseconds(2000));
    return l;
}

class beast_http_server final : public http_server {
public:
    explicit beast_http_server(const serve_context& ctx) : ctx_(ctx) {}
    ~beast_http_server() override { stop(); }

    status start() override {
        if (started_) return status::failure("http: server already started");
        if (ctx_.cfg == nullptr) return status::failure("http: no configuration");
        const http_config& cfg = ctx_.cfg->http;
        auto log = http_logger();

        auto endpoint = parse_listen_address(cfg.listen);
        if (!endpoint) return status::failure(endpoint.message());

        router routes;
        add_health_routes(routes, ctx_);
        add_feature_routes(routes, ctx_);
        api_key_auth auth(cfg.api_keys);
        if (!auth.enabled())
            log->warn("http: no API keys configured (http.auth.api_keys): every route is open to anyone "
                      "who can reach {}",
                      cfg.listen);

        const int threads = std::max(1, cfg.threads);
        ioc_ = std::make_shared<net::io_context>(threads);
        state_ = std::make_shared<server_state>(dispatcher(std::move(routes), std::move(auth)), limits_from(cfg));
        state_->ioc = ioc_;
        listener_ = std::make_shared<listener>(*ioc_, state_);
        if (status st = listener_->open(*endpoint); !st) {
            listener_.reset();
            state_.reset();
            ioc_.reset();
            return st;
        }
        port_ = listener_->port();
        listener_->run();
        threads_.reserve(static_cast<std::size_t>(threads));
        for (int i = 0; i < threads; ++i) threads_.emplace_back([ioc = ioc_] { run_io_thread(ioc); });
        started_ = true;
        log->info("http: listening on {}:{} with {} io thread(s)", endpoint->address().to_string(), port_, threads);
        return status::success();
    }

    void stop() override {
        if (!started_ || stopped_) return;
        stopped_ = true;
        ioc_->stop();
        for (auto& t : threads_) t.join();
        threads_.clear();
        // No io thread runs now, so the acceptor and the sockets may be touched from here.
        listener_->close_now();
        for (auto& s : state_->live()) s->close_now();
        listener_.reset();
        http_logger()->info("http: stopped");
        // Handlers still queued (and answers that arrive later) are dropped with the io_context,
        // which lives until the last pending answer lets go of it.
    }

    std::uint16_t port() const override { return port_; }

private:
    serve_context ctx_;
    std::shared_ptr<net::io_context> ioc_;
    std::shared_ptr<server_state> state_;
    std::shared_ptr<listener> listener_;
    std::vector<std::thread> threads_;
    std::uint16_t port_ = 0;
    bool started_ = false;
    bool stopped_ = false;
};

}  // namespace

http_server_ptr make_http_server(const serve_context& ctx) { return std::make_unique<beast_http_server>(ctx); }

}  // namespace sluice
