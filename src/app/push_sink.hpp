#pragma once
// POST /v1/ingest: validates pushed records with the same parser, transforms and dedup rules as
// Kafka messages, hands them to the store writer, and answers once they are durable.

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "lookup_pool.hpp"
#include "sluice/preprocess/record_parser.hpp"
#include "sluice/serve/services.hpp"
#include "sluice/store/store_writer.hpp"

namespace sluice {

/// Parsing runs on the lookup pool (never on an io thread). A push not durable within
/// http.ingest_timeout_ms is answered with a failure (its records may still be written later).
class push_sink final : public ingest_sink {
public:
    push_sink(const config& cfg, store_writer& writer, lookup_pool& pool);
    ~push_sink() override;
    void push(std::uint32_t set_index, std::vector<std::string> payloads, push_callback done) override;

private:
    struct pending;
    void watch();

    const config& cfg_;
    store_writer& writer_;
    lookup_pool& pool_;
    record_parser parser_;
    std::mutex dedup_mutex_;
    deduplicator dedup_;  // event ids seen in pushes (Kafka's are remembered per preprocess worker)
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::shared_ptr<pending>> waiting_;  // for the deadline watcher
    bool stopping_ = false;
    std::thread watcher_;
};

}  // namespace sluice
