// Telling a reconnect from the first connect: the state sequence of the backend connection in, a call out each
// time the connection is open again after it was lost (events sent meanwhile were missed).
/** The backend connection's states (api.ts ConnectionState; not imported: api.ts opens a socket on import). */
type ConnectionState = 'connecting' | 'open' | 'closed';

export function reconnectWatcher(onBack: () => void): (s: ConnectionState) => void {
  let wasOpen = false;
  let lost = false;
  return (s) => {
    if (s === 'open') {
      if (wasOpen && lost) onBack();
      wasOpen = true;
      lost = false;
    } else if (wasOpen) lost = true;
  };
}
