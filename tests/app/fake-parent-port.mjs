// Loaded with --import before src-main/app/backend-process.ts in a plain Node child: provides the
// process.parentPort that Electron's utilityProcess would, carried over Node's IPC channel.
process.parentPort = {
  on(event, listener) {
    if (event === 'message') process.on('message', (data) => listener({ data }));
  },
  postMessage(message) {
    process.send(message);
  },
};
