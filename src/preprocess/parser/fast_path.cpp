// The record parser's fast path (fast_path.hpp). Anything unusual returns nothing and the event
// takes the nlohmann path from the start; what simdjson refuses or reads differently is listed in
// the tests (PreprocessFastPath):
//  - numbers beyond 64-bit integers (nlohmann reads them as doubles) and out of range doubles,
//    a byte-order mark, bytes after a NUL at the end, nesting deeper than 1024: simdjson refuses;
//  - a member the set reads appearing twice: simdjson keeps both, nlohmann the last;
//  - every dead letter, so that its reason is the nlohmann path's word for word.
//
// The scan, the conversion of a member and build() are all in this file, so that the compiler
// inlines them into one loop per event.

#include "fast_path.hpp"

#include <algorithm>
#include <simdjson.h>
#include <string>
#include <string_view>
#include <vector>

#include "record_builder.hpp"

namespace sluice::parser {

namespace {

// One per thread: parse() runs on every preprocess worker at once, and a dom::parser (which keeps
// its buffers from one document to the next) reads one document at a time.
struct member_scanner {
    simdjson::dom::parser parser;
    std::vector<char> input;  // the payload, then the SIMDJSON_PADDING bytes simdjson may read past it
    std::vector<json> found;  // by slot
    std::vector<bool> seen;
};

member_scanner& this_thread_scanner() {
    thread_local member_scanner scanner;
    return scanner;
}

// The value as nlohmann parses the same text; false when it cannot be built here.
bool to_json(simdjson::dom::element e, json& out) {
    switch (e.type()) {
        case simdjson::dom::element_type::INT64: {
            std::int64_t i = 0;
            if (e.get(i)) return false;
            // nlohmann keeps an integer written without a minus sign as unsigned.
            out = i < 0 ? json(i) : json(static_cast<std::uint64_t>(i));
            return true;
        }
        case simdjson::dom::element_type::UINT64: {
            std::uint64_t u = 0;
            if (e.get(u)) return false;
            out = u;
            return true;
        }
        case simdjson::dom::element_type::DOUBLE: {
            double d = 0;
            if (e.get(d)) return false;
            out = d;
            return true;
        }
        case simdjson::dom::element_type::STRING: {
            std::string_view s;
            if (e.get(s)) return false;
            out = std::string(s);
            return true;
        }
        case simdjson::dom::element_type::BOOL: {
            bool b = false;
            if (e.get(b)) return false;
            out = b;
            return true;
        }
        case simdjson::dom::element_type::NULL_VALUE:
            out = nullptr;
            return true;
        case simdjson::dom::element_type::ARRAY:
        case simdjson::dom::element_type::OBJECT:
            // Rare (a json field, or a cast to string): nlohmann reads simdjson's compact text of the
            // element. Its doubles print so that they read back the same, and nlohmann keeps the last
            // of repeated members here as it would have in the whole event.
            out = json::parse(simdjson::to_string(e), nullptr, /*allow_exceptions=*/false);
            return !out.is_discarded();
    }
    return false;
}

}  // namespace

std::optional<processed> parse_members(const raw_message& msg, const feature_set_config& set, const set_plan& plan,
                                       std::int64_t now) {
    member_scanner& sc = this_thread_scanner();
    const std::size_t size = msg.payload.size();
    if (sc.input.size() < size + simdjson::SIMDJSON_PADDING) sc.input.resize(size + simdjson::SIMDJSON_PADDING);
    std::copy(msg.payload.begin(), msg.payload.end(), sc.input.begin());
    simdjson::dom::element root;
    simdjson::dom::object event;
    if (sc.parser.parse(sc.input.data(), size, /*realloc_if_needed=*/false).get(root) || root.get(event))
        return std::nullopt;

    const std::size_t members = plan.members.size();
    sc.found.assign(members, json());
    sc.seen.assign(members, false);
    std::size_t next = 0;  // events of a set mostly list their members in one order: look there first
    for (const simdjson::dom::key_value_pair member : event) {
        std::size_t slot = members;
        for (std::size_t i = 0; i < members; ++i) {
            const std::size_t s = next + i < members ? next + i : next + i - members;
            if (plan.members[s] == member.key) {
                slot = s;
                break;
            }
        }
        if (slot == members) continue;  // not read by the set
        if (sc.seen[slot]) return std::nullopt;
        sc.seen[slot] = true;
        if (!to_json(member.value, sc.found[slot])) return std::nullopt;
        next = slot + 1 == members ? 0 : slot + 1;
    }

    const auto at = [&](std::size_t read) -> const json* {
        const std::size_t slot = plan.slot[read];
        return sc.seen[slot] ? &sc.found[slot] : nullptr;
    };
    processed out = build(msg, set, plan, at, now);
    if (std::holds_alternative<dead_letter>(out)) return std::nullopt;
    return out;
}

}  // namespace sluice::parser
