#pragma once

#include <QLoggingCategory>

// Every log line of Ferry goes through one of these categories, so that an operator can turn one
// area up with QT_LOGGING_RULES (for example "ferry.sync.debug=true") without drowning in the rest.
// Lifecycle and state changes log at info, single frames at debug, and nothing ever logs a
// password, a token or a message body.

Q_DECLARE_LOGGING_CATEGORY(lcStore)      // ferry.store: the client's local database
Q_DECLARE_LOGGING_CATEGORY(lcProtocol)   // ferry.protocol: frame encoding and decoding
Q_DECLARE_LOGGING_CATEGORY(lcSync)       // ferry.sync: the client's connection and sync engine
Q_DECLARE_LOGGING_CATEGORY(lcCtl)        // ferry.ctl: the scriptable client
Q_DECLARE_LOGGING_CATEGORY(lcUi)         // ferry.ui: the Qt Quick app and its models
Q_DECLARE_LOGGING_CATEGORY(lcServer)     // ferry.server: server lifecycle and connections
Q_DECLARE_LOGGING_CATEGORY(lcServerAuth) // ferry.server.auth: accounts, devices, sessions
Q_DECLARE_LOGGING_CATEGORY(lcServerDb)   // ferry.server.store: the server's database
Q_DECLARE_LOGGING_CATEGORY(lcEventLoop)  // ferry.eventloop: the epoll event dispatcher
