// The HTTP server: http.threads io_contexts, each run by one thread, one listener handing the
// connections to them in turn, a session per connection. Created, started and stopped by the app, from one thread.

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ssl/context.hpp>
#include <spdlog/spdlog.h>

#include "../handlers/handlers.hpp"
#include "listener.hpp"
#include "routes.hpp"
#include "session.hpp"
#include "sluice/core/io_thread.hpp"
#include "sluice/serve/http_server.hpp"

namespace sluice {

namespace {

using namespace sluice::serve;

// Runs the io_context until it is stopped. An exception that escapes a handler (Beast 1.74's
// parser can throw on some hostile chunked input) ends only the connection it came from: the
// handler's session is released during unwinding, and the thread goes back to run().
void run_io_thread(const std::shared_ptr<net::io_context>& ioc) {
    set_current_io_context(ioc.get());
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
    l.write_timeout = std::chrono::milliseconds(std::max<std::int64_t>(1, c.write_timeout_ms));
    l.linger_timeout = std::min(l.read_timeout, std::chrono::milliseconds(2000));
    l.max_connections = static_cast<std::size_t>(std::max(1, c.max_connections));
    return l;
}

// The certificate chain and key of http.tls; a file that cannot be loaded fails the start.
result<std::shared_ptr<net::ssl::context>> make_tls_context(const tls_config& tls) {
    using R = result<std::shared_ptr<net::ssl::context>>;
    auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
    ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                     net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1 |
                     net::ssl::context::single_dh_use);
    // OpenSSL's reason for a file it cannot open is vague ("asio.ssl error"): check that first.
    for (const auto& [key, file] : {std::pair{"cert_file", &tls.cert_file}, std::pair{"key_file", &tls.key_file}}) {
        std::FILE* f = std::fopen(file->c_str(), "rb");
        if (f == nullptr)
            return R::failure("http.tls." + std::string(key) + ": cannot read '" + *file + "': " + std::strerror(errno));
        std::fclose(f);
    }
    boost::system::error_code ec;
    ctx->use_certificate_chain_file(tls.cert_file, ec);
    if (ec)
        return R::failure("http.tls.cert_file: cannot load a PEM certificate chain from '" + tls.cert_file +
                          "': " + ec.message());
    ctx->use_private_key_file(tls.key_file, net::ssl::context::pem, ec);
    if (ec)
        return R::failure("http.tls.key_file: cannot load a PEM private key matching the certificate from '" +
                          tls.key_file + "': " + ec.message());
    return ctx;
}

// Each connection is a file descriptor: make room for max_connections (plus the daemon's other
// files) if the soft limit is lower and the hard limit allows it.
void raise_file_limit(std::size_t max_connections) {
    constexpr rlim_t reserve = 256;
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
    const rlim_t wanted = static_cast<rlim_t>(max_connections) + reserve;
    if (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= wanted) return;
    const rlim_t before = lim.rlim_cur;
    lim.rlim_cur = lim.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, lim.rlim_max);
    if (lim.rlim_cur > before && setrlimit(RLIMIT_NOFILE, &lim) != 0) lim.rlim_cur = before;
    if (lim.rlim_cur < wanted)
        http_logger()->warn("http: the open file limit is {} (hard limit {}): fewer than http.max_connections ({}) "
                            "connections can be open at once",
                            lim.rlim_cur, lim.rlim_max, max_connections);
}

}  // namespace

// The API's route table (one place: the server and the fuzz target use it).
serve::router serve::make_routes(const serve_context& ctx) {
    router routes;
    add_health_routes(routes, ctx);
    add_feature_routes(routes, ctx);
    add_static_routes(routes, ctx);
    add_admin_routes(routes, ctx);
    return routes;
}

namespace {

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

        api_key_auth auth(cfg.api_keys);
        if (!auth.enabled())
            log->warn("http: no API keys configured (http.auth.api_keys): every route is open to anyone "
                      "who can reach {}",
                      cfg.listen);

        std::shared_ptr<net::ssl::context> tls;
        if (cfg.tls.enabled()) {
            auto made = make_tls_context(cfg.tls);
            if (!made) return status::failure(made.message());
            tls = std::move(*made);
        }
        const server_limits limits = limits_from(cfg);
        raise_file_limit(limits.max_connections);

        const int threads = std::max(1, cfg.threads);
        for (int i = 0; i < threads; ++i) {
            iocs_.push_back(std::make_shared<net::io_context>(1));
            // Keeps run() going while this io_context has no connection yet.
            work_.push_back(net::make_work_guard(*iocs_.back()));
        }
        // The config as it is now, shared with the generations of later reloads (the caller keeps
        // ctx_.cfg alive as long as the server).
        std::shared_ptr<const config> first(std::shared_ptr<const config>(), ctx_.cfg);
        state_ = std::make_shared<server_state>(generation(first, dispatcher::make_limiter(cfg.rate_limit)));
        state_->tls = std::move(tls);
        state_->metrics = ctx_.metrics;
        listener_ = std::make_shared<listener>(iocs_, state_);
        if (status st = listener_->open(*endpoint); !st) {
            listener_.reset();
            state_.reset();
            work_.clear();
            iocs_.clear();
            return st;
        }
        port_ = listener_->port();
        listener_->run();
        threads_.reserve(iocs_.size());
        for (const auto& ioc : iocs_) threads_.emplace_back([ioc] { run_io_thread(ioc); });
        started_ = true;
        log->info("http: listening on {}:{} ({}) with {} io thread(s)", endpoint->address().to_string(), port_,
                  state_->tls ? "https" : "http", threads);
        return status::success();
    }

    void stop() override {
        if (!started_ || stopped_) return;
        stopped_ = true;
        work_.clear();
        for (const auto& ioc : iocs_) ioc->stop();
        for (auto& t : threads_) t.join();
        threads_.clear();
        // No io thread runs now, so the acceptor and the sockets may be touched from here.
        listener_->close_now();
        for (auto& s : state_->live()) s->close_now();
        listener_.reset();
        http_logger()->info("http: stopped");
        // Handlers still queued (and answers that arrive later) are dropped with the io_contexts,
        // each of which lives until the last pending answer lets go of it.
    }

    std::uint16_t port() const override { return port_; }

    void reconfigure(std::shared_ptr<const config> cfg) override {
        if (!state_) return;
        const auto before = state_->current();
        // The buckets stay when the rate limit does.
        auto limiter = cfg->http.rate_limit == before->cfg->http.rate_limit
                           ? before->dispatch.limiter()
                           : dispatcher::make_limiter(cfg->http.rate_limit);
        state_->install(generation(std::move(cfg), std::move(limiter)));
    }

private:
    // The routes, keys and limits of one config.
    std::shared_ptr<const server_generation> generation(std::shared_ptr<const config> cfg,
                                                       std::shared_ptr<rate_limiter> limiter) const {
        serve_context ctx = ctx_;
        ctx.cfg = cfg.get();
        auto g = std::make_shared<server_generation>(server_generation{
            cfg, dispatcher(make_routes(ctx), api_key_auth(cfg->http.api_keys), std::move(limiter), ctx_.activity),
            limits_from(cfg->http)});
        g->dispatch.streamed_body_limit = static_cast<std::uint64_t>(cfg->training.body_limit_bytes);
        return g;
    }

    serve_context ctx_;
    std::vector<std::shared_ptr<net::io_context>> iocs_;
    std::vector<net::executor_work_guard<net::io_context::executor_type>> work_;
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
