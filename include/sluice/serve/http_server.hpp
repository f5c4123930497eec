#pragma once
// The HTTP API server (Boost.Beast), started and stopped by the app.

#include <cstdint>
#include <memory>

#include "sluice/core/result.hpp"
#include "sluice/serve/services.hpp"

namespace sluice {

/// Owns the listener and http.threads io threads. start() binds (port 0 picks a free port).
class http_server {
public:
    virtual ~http_server() = default;
    virtual status start() = 0;
    /// Stops accepting, closes connections and joins the io threads.
    virtual void stop() = 0;
    /// The bound port (useful when the config asked for port 0).
    virtual std::uint16_t port() const = 0;
    /// A live reload: requests that start from now on use cfg's keys, scopes, rate limit, limits
    /// and feature set settings; those under way finish with the ones they began with, and no
    /// connection is closed. (Listen address, threads and TLS stay as started.)
    virtual void reconfigure(std::shared_ptr<const config> cfg) = 0;
};
using http_server_ptr = std::unique_ptr<http_server>;

http_server_ptr make_http_server(const serve_context& ctx);

}  // namespace sluice
