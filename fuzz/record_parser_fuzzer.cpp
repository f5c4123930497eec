// libFuzzer target: arbitrary bytes as a Kafka message's value, through the record parser of
// three feature sets (every field type with bounds and defaults; casts, value transforms, a drop
// and filters; the key and the event time read as fields too). The first byte picks the set, the
// rest is the payload.
//
// Each set is parsed twice: as configured, which takes simdjson's fast path for events of the
// usual shape, and with a rename of a member no event has, which changes nothing but keeps the
// set on the nlohmann path. The outcomes must be the same to the bit: the same record, or a dead
// letter with the same reason, or the same skip. A difference aborts (a crash for libFuzzer),
// as do any sanitizer finding and any exception escaping parse().

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/parser_sets.hpp"
#include "common/printable.hpp"
#include "sluice/config/loader.hpp"
#include "sluice/preprocess/record_parser.hpp"

namespace {

using namespace sluice;

constexpr std::int64_t now = 1795258800000;  // 2026-11-21T11:00:00Z

// The sets of the parser's fast-path unit tests, each as members and its transforms.
const std::pair<const char*, const char*> sets[] = {
    {testing_support::every_type_set, ""},
    {testing_support::transform_set, testing_support::transform_list},
    {testing_support::shared_member_set, ""},
};
constexpr std::size_t set_count = sizeof sets / sizeof sets[0];

struct parsers {
    std::unique_ptr<config> fast_cfg, slow_cfg;
    std::unique_ptr<record_parser> fast, slow;
};

parsers make(std::size_t i) {
    auto loaded = load_config_text(testing_support::one_set_config(sets[i].first, sets[i].second));
    if (!loaded.ok()) {
        std::fprintf(stderr, "fuzz config %zu: %s\n", i, format_errors(loaded.errors).c_str());
        std::abort();
    }
    parsers p;
    p.fast_cfg = std::make_unique<config>(std::move(loaded.cfg));
    p.slow_cfg = std::make_unique<config>(testing_support::on_the_nlohmann_path(*p.fast_cfg));
    p.fast = std::make_unique<record_parser>(*p.fast_cfg);
    p.slow = std::make_unique<record_parser>(*p.slow_cfg);
    return p;
}

// An outcome as bytes, exact to the bit (doubles by their representation: -0.0 is not 0.0).
std::string outcome(const processed& p) {
    std::string out;
    const auto add_int = [&](std::int64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); };
    const auto add_text = [&](const std::string& s) {
        add_int(static_cast<std::int64_t>(s.size()));
        out += s;
    };
    out += static_cast<char>('0' + p.index());
    if (const auto* r = std::get_if<record>(&p)) {
        add_text(r->key);
        add_int(r->event_time_ms);
        add_int(r->ingested_at_ms);
        add_int(r->source.offset);
        for (const auto& v : r->values) {
            out += static_cast<char>('0' + v.index());
            if (const auto* i = std::get_if<std::int64_t>(&v)) add_int(*i);
            if (const auto* d = std::get_if<double>(&v)) {
                std::int64_t bits = 0;
                std::memcpy(&bits, d, sizeof bits);
                add_int(bits);
            }
            if (const auto* b = std::get_if<bool>(&v)) out += *b ? 'T' : 'F';
            if (const auto* s = std::get_if<std::string>(&v)) add_text(*s);
        }
    } else if (const auto* d = std::get_if<dead_letter>(&p)) {
        add_text(d->error);
        add_text(d->payload);
        add_int(d->received_at_ms);
    } else {
        add_text(std::get<skipped>(p).reason);
    }
    return out;
}

using testing_support::printable;

std::string describe(const processed& p) {
    if (const auto* r = std::get_if<record>(&p)) return "record of key " + printable(r->key) + " with " +
                                                        std::to_string(r->values.size()) + " values";
    if (const auto* d = std::get_if<dead_letter>(&p)) return "dead letter: " + printable(d->error);
    return "skipped: " + printable(std::get<skipped>(p).reason);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static std::vector<parsers> all = [] {
        std::vector<parsers> v;
        for (std::size_t i = 0; i < set_count; ++i) v.push_back(make(i));
        return v;
    }();
    if (size == 0) return 0;
    const auto& p = all[data[0] % set_count];
    raw_message msg;
    msg.set_index = 0;
    msg.source.topic = "t";
    msg.source.partition = 1;
    msg.source.offset = 9;
    msg.kafka_timestamp_ms = now - 60000;
    msg.payload.assign(reinterpret_cast<const char*>(data) + 1, size - 1);

    const processed fast = p.fast->parse(msg, now);
    const processed slow = p.slow->parse(msg, now);
    static const bool verbose = std::getenv("SLUICE_FUZZ_VERBOSE") != nullptr;  // replaying one input
    if (verbose) std::fprintf(stderr, "set %u: %s\n", static_cast<unsigned>(data[0] % set_count), describe(fast).c_str());
    if (outcome(fast) != outcome(slow)) {
        std::fprintf(stderr, "the fast path and the nlohmann path differ on set %u, payload %s\n  fast path: %s\n  nlohmann:  %s\n",
                     static_cast<unsigned>(data[0] % set_count), printable(msg.payload).c_str(), describe(fast).c_str(),
                     describe(slow).c_str());
        std::abort();
    }
    return 0;
}
