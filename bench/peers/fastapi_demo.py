"""The talk's FastAPI demo, as a wschat-bench peer (docs/BENCHMARKS.md).

    /usr/bin/python3 fastapi_demo.py PORT

FastAPI + uvicorn from Debian (python3-fastapi, python3-uvicorn), written the
way the talk and the FastAPI WebSocket docs show it: a ConnectionManager that
groups sockets by room and loops over them to send. The benchmark contract:
/ws/{room} broadcasts every text message to everyone in the room (sender
included); /echo echoes.
"""
import sys

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()


class ConnectionManager:
    def __init__(self):
        self.rooms: dict[str, list[WebSocket]] = {}

    async def connect(self, room: str, websocket: WebSocket):
        await websocket.accept()
        self.rooms.setdefault(room, []).append(websocket)

    def disconnect(self, room: str, websocket: WebSocket):
        members = self.rooms.get(room, [])
        if websocket in members:
            members.remove(websocket)
        if not members:
            self.rooms.pop(room, None)

    async def broadcast(self, room: str, message: str):
        for connection in self.rooms.get(room, []):
            await connection.send_text(message)


manager = ConnectionManager()


@app.websocket("/ws/{room}")
async def websocket_endpoint(websocket: WebSocket, room: str):
    await manager.connect(room, websocket)
    try:
        while True:
            data = await websocket.receive_text()
            await manager.broadcast(room, data)
    except WebSocketDisconnect:
        manager.disconnect(room, websocket)


@app.websocket("/echo")
async def echo(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_text()
            await websocket.send_text(data)
    except WebSocketDisconnect:
        pass


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
