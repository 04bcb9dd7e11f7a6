"""A legacy machine for the guardian's tests: a pymodbus server (an independent Modbus
implementation) serving one register bank over Modbus TCP on loopback or Modbus RTU on a serial
line (a socat pty), controlled by its test through standard input, one command per line:

    set TABLE ADDRESS VALUE...   write values (TABLE: co, di, hr, ir; bits as 0/1)
    get TABLE ADDRESS COUNT      print "values V..." (what a write from the guardian left)
    mute / unmute                stop / resume answering (the guardian sees timeouts)
    exception TABLE ADDRESS CODE answer reads and writes touching ADDRESS with exception CODE
    clear TABLE ADDRESS          answer normally again
    advance TABLE ADDRESS COUNT  add 1 to COUNT values from ADDRESS after every read of them (a
                                 machine whose values always move: every poll yields new values;
                                 the guardian's benchmark)
    hold                         stop advancing
    quit

Each command is answered by one line ("ok", "values ...", or "error ..."). Standard output's
first line is "listening PORT" (TCP) or "listening" (RTU) once the server is up.

Usage: modbus_sim.py tcp [PORT] | modbus_sim.py rtu DEVICE BAUD PARITY(N/E/O) STOPBITS
The unit ID is not checked (the server answers every unit), as a single machine on a line does.
"""

import asyncio
import sys
import threading

from pymodbus.constants import ExcCodes
from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

SIZE = 65536


class Block(ModbusSequentialDataBlock):
    """A sequential block that answers configured exceptions instead of values."""

    def __init__(self):
        super().__init__(0, [0] * (SIZE + 1))
        self.exceptions = {}
        # Advancing values: the 1-based range [start, end) counts up at every read.
        self.advancing = None

    def _exception(self, address, count):
        # pymodbus passes the 1-based address here (ModbusDeviceContext adds 1).
        for wire_address in range(address - 1, address - 1 + count):
            if wire_address in self.exceptions:
                return ExcCodes(self.exceptions[wire_address])
        return None

    def getValues(self, address, count=1):
        exception = self._exception(address, count)
        if exception is not None:
            return exception
        values = super().getValues(address, count)
        if self.advancing is not None:
            start, end = self.advancing
            for at in range(max(address, start), min(address + count, end)):
                self.values[at] = (self.values[at] + 1) % 65536
        return values

    def setValues(self, address, values):
        exception = self._exception(address, len(values))
        if exception is not None:
            return exception
        return super().setValues(address, values)


class Machine:
    def __init__(self):
        self.blocks = {table: Block() for table in ("co", "di", "hr", "ir")}
        self.muted = False
        device = ModbusDeviceContext(
            co=self.blocks["co"], di=self.blocks["di"], hr=self.blocks["hr"], ir=self.blocks["ir"]
        )
        self.context = ModbusServerContext(devices=device, single=True)

    def trace_packet(self, sending, data):
        # Muted: requests are read and answered with nothing, as a machine that hangs.
        if sending and self.muted:
            return b""
        return data

    def command(self, line):
        words = line.split()
        if not words:
            return "error empty command"
        verb, args = words[0], words[1:]
        try:
            if verb == "set":
                block = self.blocks[args[0]]
                block.values[int(args[1]) + 1 : int(args[1]) + 1 + len(args) - 2] = [
                    int(value) for value in args[2:]
                ]
                return "ok"
            if verb == "get":
                block = self.blocks[args[0]]
                start = int(args[1]) + 1
                values = block.values[start : start + int(args[2])]
                return "values " + " ".join(str(int(value)) for value in values)
            if verb == "mute":
                self.muted = True
                return "ok"
            if verb == "unmute":
                self.muted = False
                return "ok"
            if verb == "exception":
                self.blocks[args[0]].exceptions[int(args[1])] = int(args[2])
                return "ok"
            if verb == "advance":
                start = int(args[1]) + 1
                self.blocks[args[0]].advancing = (start, start + int(args[2]))
                return "ok"
            if verb == "hold":
                for block in self.blocks.values():
                    block.advancing = None
                return "ok"
            if verb == "clear":
                self.blocks[args[0]].exceptions.pop(int(args[1]), None)
                return "ok"
        except (KeyError, IndexError, ValueError) as error:
            return f"error {verb}: {error!r}"
        return f"error unknown command {verb}"


def control(machine, loop, server):
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        print(machine.command(line), flush=True)
    loop.call_soon_threadsafe(lambda: asyncio.ensure_future(server.shutdown()))


async def main():
    machine = Machine()
    mode = sys.argv[1]
    if mode == "tcp":
        port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
        server = ModbusTcpServer(
            machine.context, address=("127.0.0.1", port), trace_packet=machine.trace_packet
        )
    elif mode == "rtu":
        device, baud, parity, stopbits = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
        server = ModbusSerialServer(
            machine.context,
            port=device,
            baudrate=baud,
            parity=parity,
            stopbits=stopbits,
            bytesize=8,
            trace_packet=machine.trace_packet,
        )
    else:
        sys.exit(f"unknown mode {mode}")
    await server.serve_forever(background=True)
    if mode == "tcp":
        sockets = server.transport.sockets if server.transport else []
        bound = sockets[0].getsockname()[1] if sockets else port
        print(f"listening {bound}", flush=True)
    else:
        print("listening", flush=True)
    loop = asyncio.get_running_loop()
    thread = threading.Thread(target=control, args=(machine, loop, server), daemon=True)
    thread.start()
    while thread.is_alive():
        await asyncio.sleep(0.1)
    await server.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
