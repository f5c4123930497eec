#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <spdlog/spdlog.h>

#include "kafka_util.hpp"
#include "sluice/core/log.hpp"
#include "sluice/ingest/kafka_ingest.hpp"

namespace sluice {

struct embedded_kafka::impl {
    rd_kafka_t* rk = nullptr;  // hosts the mock cluster; lives as long as the cluster
    rd_kafka_mock_cluster_t* cluster = nullptr;
    ~impl() {
        if (cluster) rd_kafka_mock_cluster_destroy(cluster);
        if (rk) rd_kafka_destroy(rk);
    }
};

embedded_kafka::embedded_kafka() : impl_(std::make_unique<impl>()) {}
embedded_kafka::~embedded_kafka() = default;

status embedded_kafka::start(const config& cfg) {
    const auto& log = module_logger(log_module::ingest);
    std::string error;
    rd_kafka_conf_t* conf = kafka::make_conf({{"client.id", "sluice-embedded-broker"}}, error);
    if (!conf) return status::failure(error);
    char errstr[512];
    impl_->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!impl_->rk) {
        rd_kafka_conf_destroy(conf);
        return status::failure(std::string("embedded broker: ") + errstr);
    }
    impl_->cluster = rd_kafka_mock_cluster_new(impl_->rk, cfg.kafka.embedded.brokers);
    if (!impl_->cluster) return status::failure("embedded broker: cannot create the mock cluster");
    bootstrap_ = rd_kafka_mock_cluster_bootstraps(impl_->cluster);
    std::vector<std::string> topics;
    for (const auto& s : cfg.feature_sets) topics.push_back(s.topic);
    if (!cfg.kafka.dead_letter_topic.empty()) topics.push_back(cfg.kafka.dead_letter_topic);
    for (const auto& t : topics) {
        auto err = rd_kafka_mock_topic_create(impl_->cluster, t.c_str(), cfg.kafka.embedded.partitions, 1);
        if (err) return status::failure("embedded broker: creating topic " + t + ": " + rd_kafka_err2str(err));
    }
    log->info("embedded Kafka-protocol broker (librdkafka mock cluster) at {} with {} topics of {} partitions",
              bootstrap_, topics.size(), cfg.kafka.embedded.partitions);
    return status::success();
}

}  // namespace sluice
