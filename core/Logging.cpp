#include "core/Logging.h"

// Debug output is off by default; info and above are on.
Q_LOGGING_CATEGORY(lcStore, "ferry.store", QtInfoMsg)
Q_LOGGING_CATEGORY(lcProtocol, "ferry.protocol", QtInfoMsg)
Q_LOGGING_CATEGORY(lcSync, "ferry.sync", QtInfoMsg)
Q_LOGGING_CATEGORY(lcCtl, "ferry.ctl", QtInfoMsg)
Q_LOGGING_CATEGORY(lcUi, "ferry.ui", QtInfoMsg)
Q_LOGGING_CATEGORY(lcServer, "ferry.server", QtInfoMsg)
Q_LOGGING_CATEGORY(lcServerAuth, "ferry.server.auth", QtInfoMsg)
Q_LOGGING_CATEGORY(lcServerDb, "ferry.server.store", QtInfoMsg)
Q_LOGGING_CATEGORY(lcEventLoop, "ferry.eventloop", QtInfoMsg)
