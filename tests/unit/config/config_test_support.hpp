#pragma once
// What the config loader tests share: a readable list of errors, an assertion on one error, and
// the smallest valid config around a feature set's body.

#include <gtest/gtest.h>

#include <string>

#include "sluice/config/loader.hpp"

namespace sluice::testing_support {

// Every error, one per line, so a failed assertion shows what the loader said.
inline std::string all_errors(const config_load_result& r) { return format_errors(r.errors); }

// True when an error at exactly `path` contains `fragment` in its message.
inline ::testing::AssertionResult has_error(const config_load_result& r, const std::string& path,
                                            const std::string& fragment = "") {
    for (const auto& e : r.errors)
        if (e.path == path && e.message.find(fragment) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "no error at \"" << path << "\" containing \"" << fragment
                                         << "\"; errors were:\n"
                                         << all_errors(r);
}

// A valid config with one feature set; `extra` is spliced into the top-level object.
inline std::string with_set(const std::string& set_body, const std::string& extra = "") {
    return "{ \"feature_sets\": [ {\"name\": \"user_activity\", \"topic\": \"user-events\", \"key\": \"user_id\", "
           "\"event_time\": \"ts\"" +
           (set_body.empty() ? "" : ", " + set_body) + "} ]" + (extra.empty() ? "" : ", " + extra) + " }";
}

}  // namespace sluice::testing_support
