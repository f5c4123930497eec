#pragma once
// The second ingest source: records pushed over HTTP (POST /v1/ingest/{set}). Validated with the
// rules Kafka messages get, handed to the store writer, answered once they are durable.

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/core/lookup_pool.hpp"
#include "sluice/core/ports/push.hpp"
#include "sluice/core/result.hpp"

namespace sluice {

/// What a push did: accepted (written, or deliberately skipped) and rejected records.
struct push_outcome {
    std::size_t accepted = 0;  // valid records (written, or deliberately skipped)
    std::size_t skipped = 0;   // of the accepted: left out by a filter or as a duplicate event id
    std::vector<std::pair<std::size_t, std::string>> errors;  // (index in the request, reason): rejected
};

/// What the HTTP layer pushes into.
class ingest_sink {
public:
    using push_callback = std::function<void(result<push_outcome>)>;
    virtual ~ingest_sink() = default;
    /// Validates every payload (one JSON object each) and writes the valid ones; done is called
    /// once, on any thread, after they are durable (or with a failure: nothing was acknowledged).
    virtual void push(std::uint32_t set_index, std::vector<std::string> payloads, push_callback done) = 0;
};

/// Validation runs on the lookup pool (never on an io thread). A push not durable within
/// http.ingest_timeout_ms is answered with a failure (its records may still be written later);
/// a watcher thread of its own enforces that deadline. Owned by the app; the validator, the
/// writer and the pool outlive it.
class push_source final : public ingest_sink {
public:
    push_source(const config& cfg, push_validator& validator, push_writer& writer, lookup_pool& pool);
    ~push_source() override;
    void push(std::uint32_t set_index, std::vector<std::string> payloads, push_callback done) override;
    /// Records released from the quarantine, (row id, payload) each: validated and written like a
    /// push, their source "quarantine:<row id>" (so its rules do not hold them again).
    void release(std::uint32_t set_index, std::vector<std::pair<std::int64_t, std::string>> rows, push_callback done);

private:
    struct pending;
    void watch();
    void submit(std::uint32_t set_index, std::vector<std::string> payloads, std::vector<record_source> sources,
                push_callback done);

    const config& cfg_;
    push_validator& validator_;
    push_writer& writer_;
    lookup_pool& pool_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::shared_ptr<pending>> waiting_;  // for the deadline watcher
    bool stopping_ = false;
    std::thread watcher_;
};

}  // namespace sluice
