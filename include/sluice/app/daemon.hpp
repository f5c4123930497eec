#pragma once
// The daemon: builds every stage from the config, starts them in order, stops them in reverse.

#include <memory>

#include "sluice/config/config.hpp"
#include "sluice/config/reload.hpp"
#include "sluice/core/result.hpp"

namespace sluice {

/// Owns every stage, queue and store. start() and stop() are called from the main thread.
class daemon {
public:
    explicit daemon(const config& cfg);
    ~daemon();

    /// Starts stores, writer, preprocess workers, the embedded broker (if configured), consumers,
    /// the HTTP server and the event generator, in that order.
    status start();
    /// Stops fetching, drains the queues, flushes the stores, commits offsets, stops serving.
    /// False when pipeline.shutdown_timeout_ms passed first or the Kafka consumers could not
    /// leave their group in time.
    bool stop();
    /// After stop(): a Kafka consumer's handle was left running (its broker did not answer), so
    /// the process must end with std::_Exit once logs are flushed, not by returning from main.
    bool left_threads_running() const;
    std::uint16_t http_port() const;
    /// Re-reads the config file and applies what can change live (SIGHUP; POST /v1/admin/reload
    /// does the same). Returns what happened; the running config keeps running when refused.
    reload_outcome reload(const std::string& actor, const std::string& request_id);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// Creates the named loggers (one per module) on one stderr sink, text or JSON.
void setup_logging(const log_config& cfg);
/// A live reload's level and format, on the sink setup_logging made (safe while logging).
void reconfigure_logging(const log_config& cfg);

}  // namespace sluice
