#pragma once

#include <QByteArray>
#include <QString>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

// What every fuzz target shares: the Qt application object the SQL driver needs, quiet logging,
// and a scratch folder in memory where there is one.

namespace ferry::fuzz {

/// Creates the QCoreApplication (once) and turns logging off: a log line per input would cost
/// more than the code under test, and Qt's SQL warnings are expected for damaged input.
void initialiseQt();

/// A fresh folder for stores, on /dev/shm when it exists: SQLite's fsync there costs nothing,
/// which multiplies the executions per second. Removed when the process ends.
QString scratchFolder(const QString& name);

inline QByteArray inputBytes(const uint8_t* data, size_t size)
{
    return QByteArray(reinterpret_cast<const char*>(data), static_cast<qsizetype>(size));
}

} // namespace ferry::fuzz

/// An invariant of the code under test. A broken one aborts, so libFuzzer keeps the input that
/// broke it as a reproducer, as it does for a crash.
#define FERRY_FUZZ_CHECK(condition, what)                                                          \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            std::fprintf(stderr, "Invariant broken: %s (%s:%d)\n", what, __FILE__, __LINE__);      \
            std::abort();                                                                          \
        }                                                                                          \
    } while (false)

/// An invariant that a Result holds a value; a broken one also prints the Result's error.
#define FERRY_FUZZ_CHECK_OK(result, what)                                                    \
    do {                                                                                     \
        if (!(result)) {                                                                     \
            std::fprintf(stderr, "Error: %s: %s\n", qPrintable((result).error().kind),      \
                qPrintable((result).error().message));                                       \
        }                                                                                    \
        FERRY_FUZZ_CHECK(result, what);                                                      \
    } while (false)
